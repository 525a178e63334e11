/*
 * The PROXY protocol v1/v2 header parser, ssock__proxy_parse() (src/proxy.c):
 * the first bytes an untrusted (or trusted but broken) balancer sends. No
 * network.
 *
 * The input is the start of a connection, parsed in every mode (v1, v2,
 * any). Rules, any violation aborts:
 *  1. The answer is 0, SSOCK__PROXY_MORE or -EPROTO; on anything but 0 the
 *     result is all zero. The same call twice gives the same answer and
 *     result (deterministic).
 *  2. Incremental: every prefix of the input (each in an exact-size heap
 *     copy, so ASan sees a read past it) answers MORE or the whole input's
 *     answer; once a prefix answers, every longer one answers the same, with
 *     the same result (TLV pointers at the same offsets). A valid header's
 *     prefixes shorter than header_len answer MORE.
 *  3. Modes: "any" answers what the mode of the first byte's version
 *     answers; the other mode refuses from the first byte.
 *  4. A valid result is consistent with the bytes: v1 fits in 107 bytes,
 *     ends in CRLF, and its addresses printed back in canonical text parse
 *     to the same result; v2's header_len is 16 + the length field (<= 4096),
 *     its addresses and ports are the raw bytes, TLV pointers lie inside
 *     the header and match their type/length bytes, a unique id is at most
 *     128 bytes; a MORE answer never comes for 4096 bytes or more.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proxy.h"

/* Under ASan every prefix is checked for reads past its end by poisoning
 * the rest of one copy (linear); elsewhere (gcc, Valgrind replays) by an
 * exact-size copy per prefix (quadratic, fine for the corpus). */
#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif
#ifdef FUZZ_ASAN
#include <sanitizer/asan_interface.h>
#endif

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_proxy: %s:%d: check failed: %s\n", __FILE__, \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* Longer inputs are cut: the parser never needs more than 4096 bytes to
 * answer, and every prefix is parsed (quadratic). */
#define INPUT_MAX (SSOCK__PROXY_V2_MAX + 64)

struct answer {
    int rc;
    struct ssock__proxy_result r;
    size_t offs[3]; /* TLV pointers as offsets, SIZE_MAX for NULL */
};

static void parse(int mode, const uint8_t *buf, size_t len, struct answer *a)
{
    memset(&a->r, 0xA5, sizeof(a->r));
    a->rc = ssock__proxy_parse(mode, buf, len, &a->r);
    a->offs[0] = a->r.authority ? (size_t)(a->r.authority - buf) : SIZE_MAX;
    a->offs[1] = a->r.alpn ? (size_t)(a->r.alpn - buf) : SIZE_MAX;
    a->offs[2] = a->r.unique_id ? (size_t)(a->r.unique_id - buf) : SIZE_MAX;
}

static int same(const struct answer *a, const struct answer *b)
{
    const struct ssock__proxy_result *x = &a->r, *y = &b->r;
    return a->rc == b->rc && x->version == y->version && x->local == y->local &&
           x->v2_fam == y->v2_fam && x->src_len == y->src_len &&
           x->dst_len == y->dst_len &&
           memcmp(&x->src, &y->src, sizeof x->src) == 0 &&
           memcmp(&x->dst, &y->dst, sizeof x->dst) == 0 &&
           x->header_len == y->header_len &&
           x->authority_len == y->authority_len && x->alpn_len == y->alpn_len &&
           x->unique_id_len == y->unique_id_len &&
           memcmp(a->offs, b->offs, sizeof a->offs) == 0;
}

static void check_zero(const struct ssock__proxy_result *r)
{
    static const struct ssock__proxy_result zero;
    CHECK(memcmp(r, &zero, sizeof zero) == 0);
}

/* A TLV pointer: inside the header, after its type and length bytes. */
static void check_tlv(const uint8_t *buf, const struct ssock__proxy_result *r,
                      const uint8_t *p, size_t n, uint8_t type)
{
    if (p == NULL) {
        CHECK(n == 0);
        return;
    }
    CHECK(p >= buf + 16 + 3 && p + n <= buf + r->header_len);
    CHECK(p[-3] == type);
    CHECK((size_t)(p[-2] << 8 | p[-1]) == n);
}

/* v1: print the result back in canonical text; it must parse to the same
 * result (TCP4's canonical text is the only one: it must be the bytes). */
static void check_v1(const uint8_t *buf, const struct answer *a)
{
    const struct ssock__proxy_result *r = &a->r;
    CHECK(r->header_len >= 15 && r->header_len <= SSOCK__PROXY_V1_MAX);
    CHECK(memcmp(buf, "PROXY ", 6) == 0);
    CHECK(buf[r->header_len - 2] == '\r' && buf[r->header_len - 1] == '\n');
    CHECK(r->v2_fam == 0 && r->authority == NULL && r->alpn == NULL &&
          r->unique_id == NULL);
    if (r->local) {
        CHECK(memcmp(buf + 6, "UNKNOWN", 7) == 0);
        CHECK(r->src_len == 0 && r->dst_len == 0);
        return;
    }
    char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN], line[160];
    unsigned sp, dp;
    int fam = r->src.ss_family;
    CHECK(fam == AF_INET || fam == AF_INET6);
    CHECK(r->dst.ss_family == fam);
    if (fam == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)&r->src;
        const struct sockaddr_in *y = (const struct sockaddr_in *)&r->dst;
        CHECK(r->src_len == sizeof(*x) && r->dst_len == sizeof(*y));
        CHECK(inet_ntop(AF_INET, &x->sin_addr, s, sizeof s) != NULL);
        CHECK(inet_ntop(AF_INET, &y->sin_addr, d, sizeof d) != NULL);
        sp = ntohs(x->sin_port);
        dp = ntohs(y->sin_port);
    } else {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&r->src;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&r->dst;
        CHECK(r->src_len == sizeof(*x) && r->dst_len == sizeof(*y));
        CHECK(x->sin6_flowinfo == 0 && x->sin6_scope_id == 0);
        CHECK(y->sin6_flowinfo == 0 && y->sin6_scope_id == 0);
        /* Written out in full hex groups: inet_ntop may use dotted IPv4
         * for some forms, which TCP6 does not allow. */
        const uint8_t *xa = x->sin6_addr.s6_addr, *ya = y->sin6_addr.s6_addr;
        for (int i = 0; i < 8; i++) {
            snprintf(s + 5 * i, sizeof s - (size_t)(5 * i), "%04x%s",
                     (unsigned)(xa[2 * i] << 8 | xa[2 * i + 1]),
                     i < 7 ? ":" : "");
            snprintf(d + 5 * i, sizeof d - (size_t)(5 * i), "%04x%s",
                     (unsigned)(ya[2 * i] << 8 | ya[2 * i + 1]),
                     i < 7 ? ":" : "");
        }
        sp = ntohs(x->sin6_port);
        dp = ntohs(y->sin6_port);
    }
    int n = snprintf(line, sizeof line, "PROXY TCP%c %s %s %u %u\r\n",
                     fam == AF_INET ? '4' : '6', s, d, sp, dp);
    CHECK(n > 0 && (size_t)n < sizeof line);
    if (fam == AF_INET) {
        CHECK((size_t)n == r->header_len);
        CHECK(memcmp(line, buf, (size_t)n) == 0);
    }
    /* TCP6 printed as eight 4-digit groups: 104 bytes, always valid. */
    struct answer back;
    parse(SSOCK__PROXY_V1, (const uint8_t *)line, (size_t)n, &back);
    CHECK(back.rc == 0);
    CHECK(back.r.src_len == r->src_len && back.r.dst_len == r->dst_len);
    CHECK(memcmp(&back.r.src, &r->src, r->src_len) == 0);
    CHECK(memcmp(&back.r.dst, &r->dst, r->dst_len) == 0);
}

static void check_v2(const uint8_t *buf, const struct answer *a)
{
    const struct ssock__proxy_result *r = &a->r;
    CHECK(r->header_len >= 16 && r->header_len <= SSOCK__PROXY_V2_MAX);
    CHECK(r->header_len == 16 + (size_t)(buf[14] << 8 | buf[15]));
    CHECK(buf[12] == 0x20 || buf[12] == 0x21);
    CHECK(r->v2_fam == buf[13]);
    if (buf[12] == 0x20 || buf[13] == 0x00) {
        CHECK(r->local);
        CHECK(r->authority == NULL && r->alpn == NULL && r->unique_id == NULL);
    }
    check_tlv(buf, r, r->authority, r->authority_len, 0x02);
    check_tlv(buf, r, r->alpn, r->alpn_len, 0x01);
    check_tlv(buf, r, r->unique_id, r->unique_id_len, 0x05);
    CHECK(r->unique_id_len <= SSOCK__PROXY_UNIQUE_ID_MAX);
    if (r->local) {
        CHECK(r->src_len == 0 && r->dst_len == 0);
        return;
    }
    CHECK(buf[12] == 0x21 && (buf[13] == 0x11 || buf[13] == 0x21));
    if (buf[13] == 0x11) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)&r->src;
        const struct sockaddr_in *y = (const struct sockaddr_in *)&r->dst;
        CHECK(r->src_len == sizeof(*x) && r->dst_len == sizeof(*y));
        CHECK(x->sin_family == AF_INET && y->sin_family == AF_INET);
        CHECK(memcmp(&x->sin_addr, buf + 16, 4) == 0);
        CHECK(memcmp(&y->sin_addr, buf + 20, 4) == 0);
        CHECK(memcmp(&x->sin_port, buf + 24, 2) == 0);
        CHECK(memcmp(&y->sin_port, buf + 26, 2) == 0);
    } else {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&r->src;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&r->dst;
        CHECK(r->src_len == sizeof(*x) && r->dst_len == sizeof(*y));
        CHECK(x->sin6_family == AF_INET6 && y->sin6_family == AF_INET6);
        CHECK(memcmp(&x->sin6_addr, buf + 16, 16) == 0);
        CHECK(memcmp(&y->sin6_addr, buf + 32, 16) == 0);
        CHECK(memcmp(&x->sin6_port, buf + 48, 2) == 0);
        CHECK(memcmp(&y->sin6_port, buf + 50, 2) == 0);
    }
}

/* Rule 2: every prefix, each readable only up to its end. */
static void check_prefixes(int mode, const uint8_t *data, size_t size,
                           const struct answer *whole)
{
    uint8_t *copy = malloc(size ? size : 1);
    CHECK(copy != NULL);
#ifdef FUZZ_ASAN
    if (size > 0)
        memcpy(copy, data, size);
#endif
    int answered = 0;
    for (size_t n = 0; n < size; n++) {
        struct answer a;
#ifdef FUZZ_ASAN
        ASAN_POISON_MEMORY_REGION(copy + n, size - n);
        parse(mode, copy, n, &a);
        ASAN_UNPOISON_MEMORY_REGION(copy, size);
#else
        /* The n bytes at the end of the allocation: buf[n] is outside. */
        uint8_t *p = copy + (size - n);
        memcpy(p, data, n);
        parse(mode, p, n, &a);
#endif
        if (a.rc == SSOCK__PROXY_MORE) {
            CHECK(!answered);
            check_zero(&a.r);
            if (whole->rc == 0)
                CHECK(n < whole->r.header_len);
            continue;
        }
        answered = 1;
        if (!same(&a, whole)) {
            fprintf(stderr,
                    "fuzz_proxy: mode %d: %zu of %zu bytes answer %d, "
                    "the whole input %d\n",
                    mode, n, size, a.rc, whole->rc);
            abort();
        }
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > INPUT_MAX)
        size = INPUT_MAX;
    uint8_t *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    if (size > 0)
        memcpy(buf, data, size);

    struct answer by_mode[4];
    for (int mode = SSOCK__PROXY_V1; mode <= SSOCK__PROXY_ANY; mode++) {
        struct answer *a = &by_mode[mode], again;
        parse(mode, buf, size, a);
        CHECK(a->rc == 0 || a->rc == SSOCK__PROXY_MORE || a->rc == -EPROTO);
        parse(mode, buf, size, &again);
        CHECK(same(a, &again));
        if (a->rc != 0) {
            check_zero(&a->r);
        } else {
            CHECK(a->r.header_len <= size);
            CHECK(a->r.version == 1 || a->r.version == 2);
            CHECK((mode & a->r.version) != 0);
            if (a->r.version == 1)
                check_v1(buf, a);
            else
                check_v2(buf, a);
        }
        if (a->rc == SSOCK__PROXY_MORE)
            CHECK(size < SSOCK__PROXY_V2_MAX);
        check_prefixes(mode, buf, size, a);
    }
    /* Rule 3. */
    if (size > 0) {
        int v1 = buf[0] == 'P', v2 = buf[0] == 0x0D;
        const struct answer *any = &by_mode[SSOCK__PROXY_ANY];
        if (v1) {
            CHECK(same(any, &by_mode[SSOCK__PROXY_V1]));
            CHECK(by_mode[SSOCK__PROXY_V2].rc == -EPROTO);
        } else if (v2) {
            CHECK(same(any, &by_mode[SSOCK__PROXY_V2]));
            CHECK(by_mode[SSOCK__PROXY_V1].rc == -EPROTO);
        } else {
            for (int mode = SSOCK__PROXY_V1; mode <= SSOCK__PROXY_ANY; mode++)
                CHECK(by_mode[mode].rc == -EPROTO);
        }
    }
    free(buf);
    return 0;
}
