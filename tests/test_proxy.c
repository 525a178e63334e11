/* src/proxy.c: the PROXY protocol v1/v2 header parser. Every valid case is
 * also fed as every prefix (each in an exact-size heap copy, so ASan and
 * Valgrind see a read past the end), must answer MORE before the header is
 * complete and the same result from then on; every invalid case must
 * answer MORE or -EPROTO on each prefix, never change its mind, and end in
 * -EPROTO. */
#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"

#define MORE SSOCK__PROXY_MORE
#define BAD (-EPROTO)

/* What follows the header on the wire in every valid case. */
static const char payload[] = "GET / HTTP/1.0\r\n\r\n\x16\x03\x01";

static const char *mode_name(int mode)
{
    return mode == SSOCK__PROXY_V1   ? "v1"
           : mode == SSOCK__PROXY_V2 ? "v2"
                                     : "any";
}

static int parse_copy(int mode, const uint8_t *buf, size_t n,
                      struct ssock__proxy_result *res, size_t *offs)
{
    /* Exactly n bytes on the heap: a read of buf[n] is an error. */
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n > 0)
        memcpy(copy, buf, n);
    memset(res, 0xA5, sizeof(*res));
    int rc = ssock__proxy_parse(mode, copy, n, res);
    /* TLV pointers as offsets into the buffer (SIZE_MAX: NULL). */
    offs[0] = res->authority ? (size_t)(res->authority - copy) : SIZE_MAX;
    offs[1] = res->alpn ? (size_t)(res->alpn - copy) : SIZE_MAX;
    offs[2] = res->unique_id ? (size_t)(res->unique_id - copy) : SIZE_MAX;
    free(copy);
    return rc;
}

static void assert_zero_result(const struct ssock__proxy_result *r)
{
    static const struct ssock__proxy_result zero;
    assert_memory_equal(r, &zero, sizeof zero);
}

static void assert_same_result(const struct ssock__proxy_result *a,
                               const size_t *aoffs,
                               const struct ssock__proxy_result *b,
                               const size_t *boffs)
{
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->local, b->local);
    assert_int_equal(a->v2_fam, b->v2_fam);
    assert_int_equal(a->src_len, b->src_len);
    assert_int_equal(a->dst_len, b->dst_len);
    assert_memory_equal(&a->src, &b->src, sizeof a->src);
    assert_memory_equal(&a->dst, &b->dst, sizeof a->dst);
    assert_int_equal(a->header_len, b->header_len);
    assert_int_equal(a->authority_len, b->authority_len);
    assert_int_equal(a->alpn_len, b->alpn_len);
    assert_int_equal(a->unique_id_len, b->unique_id_len);
    for (int i = 0; i < 3; i++)
        assert_int_equal(aoffs[i], boffs[i]);
}

/*
 * `buf` holds a valid header of `hlen` bytes of `version` followed by more
 * bytes (len > hlen). In every mode and for every prefix: MORE before hlen,
 * then 0 with one and the same result; -EPROTO from the first byte on in
 * the mode that excludes the version. Leaves in *out the result of parsing
 * all of `buf`, its pointers into `buf`.
 */
static void check_valid(const uint8_t *buf, size_t len, size_t hlen,
                        int version, struct ssock__proxy_result *out)
{
    static const int modes[] = {SSOCK__PROXY_V1, SSOCK__PROXY_V2,
                                SSOCK__PROXY_ANY};
    struct ssock__proxy_result first, r;
    size_t first_offs[3], offs[3];
    int have_first = 0;

    assert_true(len > hlen);
    for (size_t m = 0; m < 3; m++) {
        int mode = modes[m];
        int allowed = (mode & version) != 0;
        for (size_t n = 0; n <= len; n++) {
            int rc = parse_copy(mode, buf, n, &r, offs);
            int want = n == 0 ? MORE : !allowed ? BAD : n < hlen ? MORE : 0;
            if (rc != want)
                fail_msg("mode %s, %zu of %zu bytes (header %zu): rc %d, "
                         "want %d",
                         mode_name(mode), n, len, hlen, rc, want);
            if (rc != 0) {
                assert_zero_result(&r);
                continue;
            }
            assert_int_equal(r.header_len, hlen);
            assert_int_equal(r.version, version);
            if (!have_first) {
                first = r;
                memcpy(first_offs, offs, sizeof offs);
                have_first = 1;
            } else {
                assert_same_result(&first, first_offs, &r, offs);
            }
        }
    }
    memset(out, 0xA5, sizeof(*out));
    assert_int_equal(ssock__proxy_parse(SSOCK__PROXY_ANY, buf, len, out), 0);
    assert_int_equal(out->header_len, hlen);
}

/* Every prefix answers MORE or -EPROTO, once -EPROTO always -EPROTO, and
 * the whole input -EPROTO; in the modes that allow `version`. Returns the
 * length of the shortest prefix that is refused. */
static size_t check_invalid(const uint8_t *buf, size_t len, int version,
                            const char *what)
{
    static const int modes[] = {SSOCK__PROXY_V1, SSOCK__PROXY_V2,
                                SSOCK__PROXY_ANY};
    struct ssock__proxy_result r;
    size_t offs[3], refused_at = SIZE_MAX;

    for (size_t m = 0; m < 3; m++) {
        if ((modes[m] & version) == 0)
            continue;
        size_t first_bad = SIZE_MAX;
        for (size_t n = 0; n <= len; n++) {
            int rc = parse_copy(modes[m], buf, n, &r, offs);
            if (rc != MORE && rc != BAD)
                fail_msg("%s: mode %s, %zu of %zu bytes: rc %d", what,
                         mode_name(modes[m]), n, len, rc);
            assert_zero_result(&r);
            if (rc == BAD && first_bad == SIZE_MAX)
                first_bad = n;
            if (rc == MORE && first_bad != SIZE_MAX)
                fail_msg("%s: mode %s: refused at %zu bytes, MORE at %zu", what,
                         mode_name(modes[m]), first_bad, n);
        }
        if (first_bad == SIZE_MAX)
            fail_msg("%s: mode %s: never refused (%zu bytes)", what,
                     mode_name(modes[m]), len);
        if (refused_at != SIZE_MAX)
            assert_int_equal(first_bad, refused_at);
        refused_at = first_bad;
    }
    return refused_at;
}

/* ---- expected addresses -------------------------------------------------- */

static void want_in4(const struct sockaddr_storage *ss, socklen_t len,
                     const char *addr, int port)
{
    struct sockaddr_in want;
    memset(&want, 0, sizeof want);
    want.sin_family = AF_INET;
    want.sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, addr, &want.sin_addr), 1);
    assert_int_equal(len, sizeof want);
    assert_memory_equal(ss, &want, sizeof want);
}

static void want_in6(const struct sockaddr_storage *ss, socklen_t len,
                     const char *addr, int port)
{
    struct sockaddr_in6 want;
    memset(&want, 0, sizeof want);
    want.sin6_family = AF_INET6;
    want.sin6_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET6, addr, &want.sin6_addr), 1);
    assert_int_equal(len, sizeof want);
    assert_memory_equal(ss, &want, sizeof want);
}

static void want_addrs(const struct ssock__proxy_result *r, int family,
                       const char *src, int sport, const char *dst, int dport)
{
    assert_int_equal(r->local, 0);
    if (family == AF_INET) {
        want_in4(&r->src, r->src_len, src, sport);
        want_in4(&r->dst, r->dst_len, dst, dport);
    } else {
        want_in6(&r->src, r->src_len, src, sport);
        want_in6(&r->dst, r->dst_len, dst, dport);
    }
}

static void want_local(const struct ssock__proxy_result *r)
{
    static const struct sockaddr_storage zero;
    assert_int_equal(r->local, 1);
    assert_int_equal(r->src_len, 0);
    assert_int_equal(r->dst_len, 0);
    assert_memory_equal(&r->src, &zero, sizeof zero);
    assert_memory_equal(&r->dst, &zero, sizeof zero);
}

static void want_no_tlvs(const struct ssock__proxy_result *r)
{
    assert_null(r->authority);
    assert_null(r->alpn);
    assert_null(r->unique_id);
    assert_int_equal(r->authority_len + r->alpn_len + r->unique_id_len, 0);
}

/* ---- v1 ------------------------------------------------------------------ */

struct v1_case {
    const char *line;
    size_t len; /* 0: strlen(line) */
    int family; /* 0: local (UNKNOWN) */
    const char *src, *dst;
    int sport, dport;
};

#define V6MAX "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
#define V6MAXU "FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF"

static const struct v1_case v1_valid[] = {
    {"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", 0, AF_INET,
     "192.168.0.1", "192.168.0.11", 56324, 443},
    {"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", 0, AF_INET,
     "255.255.255.255", "255.255.255.255", 65535, 65535},
    {"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", 0, AF_INET, "0.0.0.0", "0.0.0.0", 0,
     0},
    {"PROXY TCP4 10.0.0.1 127.0.0.1 1 65535\r\n", 0, AF_INET, "10.0.0.1",
     "127.0.0.1", 1, 65535},
    {"PROXY TCP4 100.20.3.0 1.0.10.200 10 100\r\n", 0, AF_INET, "100.20.3.0",
     "1.0.10.200", 10, 100},
    {"PROXY TCP6 2001:db8::1 ::1 12345 443\r\n", 0, AF_INET6, "2001:db8::1",
     "::1", 12345, 443},
    {"PROXY TCP6 " V6MAX " " V6MAXU " 65535 65535\r\n", 0, AF_INET6, V6MAX,
     V6MAX, 65535, 65535},
    {"PROXY TCP6 :: :: 0 0\r\n", 0, AF_INET6, "::", "::", 0, 0},
    {"PROXY TCP6 0:0:0:0:0:ffff:102:304 fe80::1 80 8080\r\n", 0, AF_INET6,
     "::ffff:1.2.3.4", "fe80::1", 80, 8080},
    {"PROXY TCP6 2001:DB8:0:0:1:0:0:1 1:: 9 99\r\n", 0, AF_INET6,
     "2001:db8::1:0:0:1", "1::", 9, 99},
    {"PROXY UNKNOWN\r\n", 0, 0, NULL, NULL, 0, 0},
    {"PROXY UNKNOWN \r\n", 0, 0, NULL, NULL, 0, 0},
    {"PROXY UNKNOWN anything \x01\x7f\xff goes\t \x00 here\r\n", 41, 0, NULL,
     NULL, 0, 0},
    /* The specification's worst case: exactly 107 bytes. */
    {"PROXY UNKNOWN " V6MAX " " V6MAX " 65535 65535\r\n", 0, 0, NULL, NULL, 0,
     0},
};

static size_t v1_len(const struct v1_case *c)
{
    return c->len ? c->len : strlen(c->line);
}

static void test_v1_valid(void **state)
{
    (void)state;
    uint8_t buf[256];
    int worst = 0;
    for (size_t i = 0; i < sizeof v1_valid / sizeof v1_valid[0]; i++) {
        const struct v1_case *c = &v1_valid[i];
        size_t hlen = v1_len(c);
        if (hlen == SSOCK__PROXY_V1_MAX)
            worst++;
        struct ssock__proxy_result r;
        assert_true(hlen <= SSOCK__PROXY_V1_MAX);
        memcpy(buf, c->line, hlen);
        memcpy(buf + hlen, payload, sizeof payload - 1);
        check_valid(buf, hlen + sizeof payload - 1, hlen, 1, &r);
        assert_int_equal(r.version, 1);
        assert_int_equal(r.v2_fam, 0);
        want_no_tlvs(&r);
        if (c->family == 0)
            want_local(&r);
        else
            want_addrs(&r, c->family, c->src, c->sport, c->dst, c->dport);
    }
    /* The worst case above really is the 107-byte maximum. */
    assert_int_equal(worst, 1);
}

static const char *const v1_invalid[] = {
    "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r",
    "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.08 1 2\r\n",
    "PROXY TCP4 1.2.3.00 5.6.7.8 1 2\r\n",
    "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
    "PROXY TCP4 1.2.3.1000 5.6.7.8 1 2\r\n",
    "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
    "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
    "PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n",
    "PROXY TCP4 .1.2.3 5.6.7.8 1 2\r\n",
    "PROXY TCP4 1.2.3.4. 5.6.7.8 1 2\r\n",
    "PROXY TCP4 1234.1.1.1 5.6.7.8 1 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8.9.10.11.12 1 2\r\n",
    "PROXY TCP4 0x1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY TCP4 ::1 ::1 1 2\r\n",
    "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n",
    "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n",
    "PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n",
    "PROXY TCP6 12345::1 ::1 1 2\r\n",
    "PROXY TCP6 1::2::3 ::1 1 2\r\n",
    "PROXY TCP6 ::1 1::2::3 1 2\r\n",
    "PROXY TCP6 :::1 ::1 1 2\r\n",
    "PROXY TCP6 fe80::1%lo ::1 1 2\r\n",
    "PROXY TCP6 [::1] ::1 1 2\r\n",
    "PROXY TCP6 g::1 ::1 1 2\r\n",
    "PROXY TCP6 0000:0000:0000:0000:0000:0000:0000:00001 ::1 1 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8\r\n",
    "PROXY TCP4 1.2.3.4\r\n",
    "PROXY TCP4\r\n",
    "PROXY TCP4 \r\n",
    "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY TCP46 1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY TCP 1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY UNKNOWNX\r\n",
    "PROXY UNKNOWN\n",
    "PROXY UNKNOWN\r\r\n",
    "PROXY UNKNOWN x\ny\r\n",
    "PROXY UNKNOWN x\ry\r\n",
    "PROXY UNKNOW\r\n",
    "PROXY \r\n",
    "PROXY\r\n",
    "PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "PRXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "GET / HTTP/1.1\r\n",
    "\x16\x03\x01\x02\x00\x01",
    " PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
};

static void test_v1_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof v1_invalid / sizeof v1_invalid[0]; i++) {
        const char *s = v1_invalid[i];
        (void)check_invalid((const uint8_t *)s, strlen(s), 1, s);
    }
    /* A NUL inside a field. */
    static const char nul[] = "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n";
    (void)check_invalid((const uint8_t *)nul, sizeof nul - 1, 1, "NUL");
}

/* Refused as soon as the bytes prove it, not at the end of the line. */
static void test_v1_early_reject(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t at;
    } cases[] = {
        {"\x16\x03\x01\x02\x00", 1},
        {"GET / HTTP/1.1\r\n", 1},
        {"PROXY X", 7},
        {"PROXY TCP4 1.2.3.4x", 19},
        {"PROXY TCP4 01 ", 14}, /* a field is checked at its end */
        {"PROXY TCP6 ::1 ::1 123456", 25},
        {"PROXY UNKNOWN x\n", 16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint8_t *s = (const uint8_t *)cases[i].s;
        size_t n = strlen(cases[i].s);
        size_t at =
            check_invalid(s, n, n >= 1 && s[0] == 'P' ? 1 : 3, cases[i].s);
        if (at != cases[i].at)
            fail_msg("\"%s\": refused at %zu bytes, want %zu", cases[i].s, at,
                     cases[i].at);
    }
}

static void test_v1_oversized(void **state)
{
    (void)state;
    char line[256];
    struct ssock__proxy_result r;

    /* 107 bytes with CRLF: valid; 108: refused at its 107th byte, a CR
     * whose LF would be the 108th. */
    memset(line, 'x', sizeof line);
    memcpy(line, "PROXY UNKNOWN ", 14);
    memcpy(line + 105, "\r\n", 2);
    assert_int_equal(
        ssock__proxy_parse(SSOCK__PROXY_V1, (uint8_t *)line, 107, &r), 0);
    assert_int_equal(r.header_len, 107);
    memset(line, 'x', sizeof line);
    memcpy(line, "PROXY UNKNOWN ", 14);
    memcpy(line + 106, "\r\n", 2);
    assert_int_equal(check_invalid((uint8_t *)line, 108, 1, "108 bytes"), 107);
    /* No CRLF: MORE up to 106 bytes, refused at 107 (the line cannot end
     * within the longest line any more). */
    memset(line, 'x', sizeof line);
    memcpy(line, "PROXY UNKNOWN ", 14);
    assert_int_equal(
        ssock__proxy_parse(SSOCK__PROXY_ANY, (uint8_t *)line, 106, &r), MORE);
    assert_int_equal(check_invalid((uint8_t *)line, 200, 1, "no CRLF"), 107);
    /* The longest TCP6 line with full-length groups (104 bytes) fits. */
    snprintf(line, sizeof line, "PROXY TCP6 %s %s 65535 65535\r\n",
             "0000:0000:0000:0000:0000:0000:0000:0001",
             "0000:0000:0000:0000:0000:0000:0000:0001");
    assert_int_equal(
        ssock__proxy_parse(SSOCK__PROXY_V1, (uint8_t *)line, strlen(line), &r),
        0);
    assert_true(strlen(line) <= SSOCK__PROXY_V1_MAX);
}

/* ---- v2 ------------------------------------------------------------------ */

struct hb {
    uint8_t b[SSOCK__PROXY_V2_MAX + 512];
    size_t n;
};

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static void put(struct hb *h, const void *p, size_t n)
{
    assert_true(h->n + n <= sizeof h->b);
    memcpy(h->b + h->n, p, n);
    h->n += n;
}

static void put8(struct hb *h, unsigned v)
{
    uint8_t b = (uint8_t)v;
    put(h, &b, 1);
}

static void put16(struct hb *h, unsigned v)
{
    put8(h, v >> 8);
    put8(h, v & 0xFF);
}

static void v2_start(struct hb *h, unsigned ver_cmd, unsigned fam)
{
    h->n = 0;
    put(h, sig, sizeof sig);
    put8(h, ver_cmd);
    put8(h, fam);
    put16(h, 0);
}

/* The length field from what was put after the 16 fixed bytes. */
static void v2_finish(struct hb *h)
{
    size_t l = h->n - 16;
    h->b[14] = (uint8_t)(l >> 8);
    h->b[15] = (uint8_t)(l & 0xFF);
}

static void put_in4(struct hb *h, const char *src, const char *dst, int sp,
                    int dp)
{
    uint8_t a[4];
    assert_int_equal(inet_pton(AF_INET, src, a), 1);
    put(h, a, 4);
    assert_int_equal(inet_pton(AF_INET, dst, a), 1);
    put(h, a, 4);
    put16(h, (unsigned)sp);
    put16(h, (unsigned)dp);
}

static void put_in6(struct hb *h, const char *src, const char *dst, int sp,
                    int dp)
{
    uint8_t a[16];
    assert_int_equal(inet_pton(AF_INET6, src, a), 1);
    put(h, a, 16);
    assert_int_equal(inet_pton(AF_INET6, dst, a), 1);
    put(h, a, 16);
    put16(h, (unsigned)sp);
    put16(h, (unsigned)dp);
}

static void put_tlv(struct hb *h, unsigned type, const void *v, size_t n)
{
    put8(h, type);
    put16(h, (unsigned)n);
    if (n > 0)
        put(h, v, n);
}

static void put_fill(struct hb *h, uint8_t byte, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put8(h, byte);
}

/* The header in h, then the payload: check it and return the result. */
static void v2_valid(struct hb *h, struct ssock__proxy_result *r)
{
    size_t hlen = h->n;
    assert_true(hlen <= SSOCK__PROXY_V2_MAX);
    put(h, payload, sizeof payload - 1);
    check_valid(h->b, h->n, hlen, 2, r);
    assert_int_equal(r->version, 2);
}

static void want_tlv(const struct hb *h, const uint8_t *p, size_t plen,
                     const void *want, size_t wlen)
{
    assert_non_null(p);
    assert_true(p >= h->b && p + plen <= h->b + h->n);
    assert_int_equal(plen, wlen);
    if (wlen > 0)
        assert_memory_equal(p, want, wlen);
}

static void test_v2_tcp(void **state)
{
    (void)state;
    struct hb h;
    struct ssock__proxy_result r;

    v2_start(&h, 0x21, 0x11);
    put_in4(&h, "192.0.2.1", "198.51.100.7", 56324, 443);
    v2_finish(&h);
    assert_int_equal(h.n, 28);
    v2_valid(&h, &r);
    assert_int_equal(r.v2_fam, 0x11);
    want_addrs(&r, AF_INET, "192.0.2.1", 56324, "198.51.100.7", 443);
    want_no_tlvs(&r);

    v2_start(&h, 0x21, 0x21);
    put_in6(&h, "2001:db8::1", "::1", 0, 65535);
    v2_finish(&h);
    assert_int_equal(h.n, 52);
    v2_valid(&h, &r);
    assert_int_equal(r.v2_fam, 0x21);
    want_addrs(&r, AF_INET6, "2001:db8::1", 0, "::1", 65535);
    want_no_tlvs(&r);

    /* IPv4-mapped stays IPv6: what the balancer said, unchanged. */
    v2_start(&h, 0x21, 0x21);
    put_in6(&h, "::ffff:10.1.2.3", "::ffff:10.1.2.4", 1, 2);
    v2_finish(&h);
    v2_valid(&h, &r);
    want_addrs(&r, AF_INET6, "::ffff:10.1.2.3", 1, "::ffff:10.1.2.4", 2);
}

static void test_v2_tlvs(void **state)
{
    (void)state;
    struct hb h;
    struct ssock__proxy_result r;
    uint8_t uid[128], ssl[32];

    for (size_t i = 0; i < sizeof uid; i++)
        uid[i] = (uint8_t)(i * 7 + 1);
    /* PP2_TYPE_SSL: client, verify, then sub-TLVs (skipped whole). */
    memset(ssl, 0, sizeof ssl);
    ssl[0] = 0x01;
    memcpy(ssl + 5, "\x21\x00\x07TLSv1.3", 10);

    v2_start(&h, 0x21, 0x11);
    put_in4(&h, "203.0.113.9", "10.0.0.1", 40000, 8443);
    put_tlv(&h, 0x04, "\0\0\0\0\0", 5); /* NOOP */
    put_tlv(&h, 0x02, "example.com", 11);
    put_tlv(&h, 0x03, "\x12\x34\x56\x78", 4); /* CRC32C: not verified */
    put_tlv(&h, 0x01, "h2", 2);
    put_tlv(&h, 0x20, ssl, 15);
    put_tlv(&h, 0x05, uid, sizeof uid);
    put_tlv(&h, 0x30, "netns", 5);
    put_tlv(&h, 0xE0, NULL, 0);           /* custom range, empty */
    put_tlv(&h, 0xEE, "\x02\x00\x05", 3); /* looks like a TLV: skipped */
    v2_finish(&h);
    v2_valid(&h, &r);
    want_addrs(&r, AF_INET, "203.0.113.9", 40000, "10.0.0.1", 8443);
    want_tlv(&h, r.authority, r.authority_len, "example.com", 11);
    want_tlv(&h, r.alpn, r.alpn_len, "h2", 2);
    want_tlv(&h, r.unique_id, r.unique_id_len, uid, sizeof uid);
    /* They point at the bytes of the header. */
    assert_ptr_equal(r.authority, h.b + 16 + 12 + 8 + 3);

    /* Present and empty: non-NULL, length 0. Over IPv6. */
    v2_start(&h, 0x21, 0x21);
    put_in6(&h, "fe80::1", "fe80::2", 5, 6);
    put_tlv(&h, 0x02, NULL, 0);
    put_tlv(&h, 0x05, NULL, 0);
    v2_finish(&h);
    v2_valid(&h, &r);
    want_tlv(&h, r.authority, r.authority_len, NULL, 0);
    want_tlv(&h, r.unique_id, r.unique_id_len, NULL, 0);
    assert_null(r.alpn);

    /* The last TLV ends exactly at the end of the header, and the bytes
     * after it (payload) are not taken for a TLV. */
    v2_start(&h, 0x21, 0x11);
    put_in4(&h, "1.2.3.4", "5.6.7.8", 1, 2);
    put_tlv(&h, 0x01, "http/1.1", 8);
    v2_finish(&h);
    v2_valid(&h, &r);
    want_tlv(&h, r.alpn, r.alpn_len, "http/1.1", 8);
    assert_int_equal(r.header_len, 16 + 12 + 11);
}

static void test_v2_local_and_fallbacks(void **state)
{
    (void)state;
    struct hb h;
    struct ssock__proxy_result r;

    /* LOCAL, the health check: no block. */
    v2_start(&h, 0x20, 0x00);
    v2_finish(&h);
    v2_valid(&h, &r);
    want_local(&r);
    want_no_tlvs(&r);
    assert_int_equal(r.header_len, 16);

    /* LOCAL with a block: skipped whole, family ignored, TLVs not read
     * (a truncated one inside does not matter). */
    v2_start(&h, 0x20, 0x11);
    put_in4(&h, "1.2.3.4", "5.6.7.8", 1, 2);
    put_tlv(&h, 0x02, "ignored", 7);
    put8(&h, 0x02);
    v2_finish(&h);
    v2_valid(&h, &r);
    want_local(&r);
    want_no_tlvs(&r);
    assert_int_equal(r.v2_fam, 0x11);
    v2_start(&h, 0x20, 0xFF);
    put_fill(&h, 0xAB, 5);
    v2_finish(&h);
    v2_valid(&h, &r);
    want_local(&r);
    assert_int_equal(r.header_len, 21);

    /* PROXY, UNSPEC: the block is discarded too. */
    v2_start(&h, 0x21, 0x00);
    put_fill(&h, 0x01, 7);
    v2_finish(&h);
    v2_valid(&h, &r);
    want_local(&r);
    want_no_tlvs(&r);

    /* UDP and UNIX: valid, fall back to the TCP peer; TLVs still read. */
    static const unsigned fams[] = {0x12, 0x22, 0x31, 0x32};
    static const size_t alen[] = {12, 36, 216, 216};
    for (size_t i = 0; i < 4; i++) {
        v2_start(&h, 0x21, fams[i]);
        put_fill(&h, 0x41, alen[i]);
        put_tlv(&h, 0x02, "udp.example", 11);
        v2_finish(&h);
        v2_valid(&h, &r);
        want_local(&r);
        assert_int_equal(r.v2_fam, fams[i]);
        want_tlv(&h, r.authority, r.authority_len, "udp.example", 11);
        assert_null(r.alpn);
    }
}

static void test_v2_sizes(void **state)
{
    (void)state;
    struct hb h;
    struct ssock__proxy_result r;

    /* Exactly SSOCK__PROXY_V2_MAX bytes: valid. */
    v2_start(&h, 0x21, 0x11);
    put_in4(&h, "1.2.3.4", "5.6.7.8", 1, 2);
    size_t noop = SSOCK__PROXY_V2_MAX - h.n - 3;
    put8(&h, 0x04);
    put16(&h, (unsigned)noop);
    put_fill(&h, 0, noop);
    v2_finish(&h);
    assert_int_equal(h.n, SSOCK__PROXY_V2_MAX);
    v2_valid(&h, &r);
    assert_int_equal(r.header_len, SSOCK__PROXY_V2_MAX);

    /* One more: refused as soon as the length is read (16 bytes). */
    v2_start(&h, 0x21, 0x11);
    put_in4(&h, "1.2.3.4", "5.6.7.8", 1, 2);
    put8(&h, 0x04);
    put16(&h, (unsigned)noop + 1);
    put_fill(&h, 0, noop + 1);
    v2_finish(&h);
    assert_int_equal(h.n, SSOCK__PROXY_V2_MAX + 1);
    assert_int_equal(check_invalid(h.b, h.n, 2, "4097"), 16);

    /* The largest length field; LOCAL is no exception. */
    v2_start(&h, 0x20, 0x00);
    h.b[14] = 0xFF;
    h.b[15] = 0xFF;
    assert_int_equal(check_invalid(h.b, h.n, 2, "len 65535"), 16);
    /* Truncated: MORE, whatever is missing. */
    v2_start(&h, 0x21, 0x21);
    put_in6(&h, "::1", "::2", 3, 4);
    v2_finish(&h);
    for (size_t n = 0; n < h.n; n++)
        assert_int_equal(ssock__proxy_parse(SSOCK__PROXY_ANY, h.b, n, &r),
                         MORE);
}

static void test_v2_invalid(void **state)
{
    (void)state;
    struct hb h;
    char what[64];

    /* Each byte of the signature, refused at that byte. */
    for (size_t i = 0; i < 12; i++) {
        v2_start(&h, 0x21, 0x11);
        put_in4(&h, "1.2.3.4", "5.6.7.8", 1, 2);
        v2_finish(&h);
        h.b[i] ^= 0x40;
        snprintf(what, sizeof what, "signature byte %zu", i);
        size_t at = check_invalid(h.b, h.n, i == 0 ? 3 : 2, what);
        assert_int_equal(at, i + 1);
    }
    /* Version nibble other than 2; commands other than LOCAL/PROXY:
     * refused at byte 13. */
    static const unsigned vc[] = {0x01, 0x11, 0x31, 0xF1, 0x10,
                                  0x22, 0x23, 0x2F, 0x00, 0xFF};
    for (size_t i = 0; i < sizeof vc / sizeof vc[0]; i++) {
        v2_start(&h, vc[i], 0x11);
        put_in4(&h, "1.2.3.4", "5.6.7.8", 1, 2);
        v2_finish(&h);
        snprintf(what, sizeof what, "ver_cmd 0x%02x", vc[i]);
        assert_int_equal(check_invalid(h.b, h.n, 2, what), 13);
    }
    /* Family/transport bytes outside the specification: refused at 14. */
    static const unsigned fam[] = {0x01, 0x02, 0x03, 0x10, 0x13, 0x1F, 0x20,
                                   0x23, 0x30, 0x33, 0x40, 0x41, 0xF1, 0xFF};
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
        v2_start(&h, 0x21, fam[i]);
        put_fill(&h, 0, 216);
        v2_finish(&h);
        snprintf(what, sizeof what, "fam 0x%02x", fam[i]);
        assert_int_equal(check_invalid(h.b, h.n, 2, what), 14);
    }
    /* Address block shorter than the family's: refused at 16. */
    static const struct {
        unsigned fam;
        size_t len;
    } shortb[] = {{0x11, 11}, {0x12, 0},   {0x21, 35},
                  {0x22, 12}, {0x31, 215}, {0x32, 0}};
    for (size_t i = 0; i < sizeof shortb / sizeof shortb[0]; i++) {
        v2_start(&h, 0x21, shortb[i].fam);
        put_fill(&h, 0, shortb[i].len);
        v2_finish(&h);
        snprintf(what, sizeof what, "fam 0x%02x len %zu", shortb[i].fam,
                 shortb[i].len);
        assert_int_equal(check_invalid(h.b, h.n, 2, what), 16);
    }
}

/* TLVs that do not fill the rest exactly, too long a unique id, repeats:
 * refused once the whole header is there. */
static void test_v2_tlv_bounds(void **state)
{
    (void)state;
    struct hb h;
    uint8_t big[200];
    memset(big, 'u', sizeof big);

    struct {
        const char *what;
        const uint8_t *tail;
        size_t n;
    } tails[] = {
        {"1 byte", (const uint8_t *)"\x04", 1},
        {"2 bytes", (const uint8_t *)"\x04\x00", 2},
        {"value 1 short",
         (const uint8_t *)"\x02\x00\x05"
                          "abcd",
         7},
        {"value 65535", (const uint8_t *)"\x04\xFF\xFF\x00", 4},
        {"after a good one", (const uint8_t *)"\x01\x00\x02h2\x02\x00", 7},
        {"dup authority",
         (const uint8_t *)"\x02\x00\x01"
                          "a\x02\x00\x01"
                          "b",
         8},
        {"dup alpn", (const uint8_t *)"\x01\x00\x00\x01\x00\x00", 6},
        {"dup unique id", (const uint8_t *)"\x05\x00\x01x\x05\x00\x00", 7},
    };
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        v2_start(&h, 0x21, 0x11);
        put_in4(&h, "1.2.3.4", "5.6.7.8", 1, 2);
        put(&h, tails[i].tail, tails[i].n);
        v2_finish(&h);
        assert_int_equal(check_invalid(h.b, h.n, 2, tails[i].what), h.n);
        /* The same tail after an IPv6 and a UNIX block. */
        v2_start(&h, 0x21, 0x21);
        put_fill(&h, 0, 36);
        put(&h, tails[i].tail, tails[i].n);
        v2_finish(&h);
        assert_int_equal(check_invalid(h.b, h.n, 2, tails[i].what), h.n);
        v2_start(&h, 0x21, 0x31);
        put_fill(&h, 0, 216);
        put(&h, tails[i].tail, tails[i].n);
        v2_finish(&h);
        assert_int_equal(check_invalid(h.b, h.n, 2, tails[i].what), h.n);
    }
    /* UNIQUE_ID: 128 bytes valid (test_v2_tlvs), 129 not. */
    v2_start(&h, 0x21, 0x11);
    put_in4(&h, "1.2.3.4", "5.6.7.8", 1, 2);
    put_tlv(&h, 0x05, big, 129);
    v2_finish(&h);
    assert_int_equal(check_invalid(h.b, h.n, 2, "unique id 129"), h.n);
}

/* ---- modes and arguments --------------------------------------------------
 */

static void test_modes_and_args(void **state)
{
    (void)state;
    static const char v1[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    struct hb h;
    struct ssock__proxy_result r;
    const uint8_t *b1 = (const uint8_t *)v1;
    size_t n1 = sizeof v1 - 1;

    v2_start(&h, 0x20, 0x00);
    v2_finish(&h);

    assert_int_equal(ssock__proxy_parse(SSOCK__PROXY_V1, b1, n1, &r), 0);
    assert_int_equal(ssock__proxy_parse(SSOCK__PROXY_ANY, b1, n1, &r), 0);
    assert_int_equal(ssock__proxy_parse(SSOCK__PROXY_V2, b1, n1, &r), BAD);
    assert_int_equal(ssock__proxy_parse(SSOCK__PROXY_V2, b1, 1, &r), BAD);
    assert_zero_result(&r);
    assert_int_equal(ssock__proxy_parse(SSOCK__PROXY_V2, h.b, h.n, &r), 0);
    assert_int_equal(ssock__proxy_parse(SSOCK__PROXY_ANY, h.b, h.n, &r), 0);
    assert_int_equal(ssock__proxy_parse(SSOCK__PROXY_V1, h.b, h.n, &r), BAD);
    assert_int_equal(ssock__proxy_parse(SSOCK__PROXY_V1, h.b, 1, &r), BAD);
    /* Nothing yet: MORE in every mode. */
    for (int m = SSOCK__PROXY_V1; m <= SSOCK__PROXY_ANY; m++) {
        assert_int_equal(ssock__proxy_parse(m, b1, 0, &r), MORE);
        assert_int_equal(ssock__proxy_parse(m, NULL, 0, &r), MORE);
    }
    /* Bad arguments. */
    static const int bad_modes[] = {0, 4, -1, 7, 0x100};
    for (size_t i = 0; i < sizeof bad_modes / sizeof bad_modes[0]; i++) {
        memset(&r, 0xA5, sizeof r);
        assert_int_equal(ssock__proxy_parse(bad_modes[i], b1, n1, &r),
                         SSOCK_EINVAL);
        assert_zero_result(&r);
    }
    assert_int_equal(ssock__proxy_parse(SSOCK__PROXY_ANY, b1, n1, NULL),
                     SSOCK_EINVAL);
    assert_int_equal(ssock__proxy_parse(SSOCK__PROXY_ANY, NULL, 5, &r),
                     SSOCK_EINVAL);
}

/*
 * The header ends right before an inaccessible page and the caller claims
 * more bytes than that: a parser that read one byte past the header would
 * crash. (The claim is a lie only this test tells; nothing is read there.)
 */
static void test_never_reads_past_header(void **state)
{
    (void)state;
    long page = sysconf(_SC_PAGESIZE);
    assert_true(page >= 4096);
    uint8_t *map = mmap(NULL, (size_t)page * 3, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map + 2 * page, (size_t)page, PROT_NONE), 0);
    uint8_t *end = map + 2 * page;

    struct hb h;
    struct ssock__proxy_result r;
    const struct {
        const char *s;
        int rc;
    } cases[] = {
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 0},
        {"PROXY TCP6 ::1 ::2 1 2\r\n", 0},
        {"PROXY UNKNOWN\r\n", 0},
        {"PROXY UNKNOWN 1 2 3\r\n", 0},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", BAD},
        {"PROXY Z", BAD},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].s);
        memcpy(end - n, cases[i].s, n);
        assert_int_equal(
            ssock__proxy_parse(SSOCK__PROXY_ANY, end - n, n + 4096, &r),
            cases[i].rc);
        if (cases[i].rc == 0)
            assert_int_equal(r.header_len, n);
    }
    for (int k = 0; k < 3; k++) {
        if (k == 0) {
            v2_start(&h, 0x21, 0x21);
            put_in6(&h, "::1", "::2", 1, 2);
            put_tlv(&h, 0x02, "last", 4);
        } else if (k == 1) {
            v2_start(&h, 0x20, 0x00);
            put_fill(&h, 0x02, 9);
        } else {
            v2_start(&h, 0x21, 0x31);
            put_fill(&h, 0, 216);
            put_tlv(&h, 0x05, "id", 2);
        }
        v2_finish(&h);
        memcpy(end - h.n, h.b, h.n);
        assert_int_equal(
            ssock__proxy_parse(SSOCK__PROXY_ANY, end - h.n, h.n + 100000, &r),
            0);
        assert_int_equal(r.header_len, h.n);
    }
    assert_int_equal(munmap(map, (size_t)page * 3), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_valid),
        cmocka_unit_test(test_v1_invalid),
        cmocka_unit_test(test_v1_early_reject),
        cmocka_unit_test(test_v1_oversized),
        cmocka_unit_test(test_v2_tcp),
        cmocka_unit_test(test_v2_tlvs),
        cmocka_unit_test(test_v2_local_and_fallbacks),
        cmocka_unit_test(test_v2_sizes),
        cmocka_unit_test(test_v2_invalid),
        cmocka_unit_test(test_v2_tlv_bounds),
        cmocka_unit_test(test_modes_and_args),
        cmocka_unit_test(test_never_reads_past_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
