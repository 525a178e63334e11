/*
 * CIDR lists of trusted PROXY sources: ssock__cidr_parse() and
 * ssock__cidr_match() (src/cidr.c), which read the proxy_trusted option.
 *
 * The input is text up to its first NUL (the list), then raw bytes (the
 * addresses to match). Checks:
 *  1. parse returns 0 or SSOCK_EBADADDR; on SSOCK_EBADADDR the list is
 *     empty; on 0, 0 <= n <= SSOCK__CIDR_MAX, every prefix is 0..128 bits
 *     with no bit set after it.
 *  2. The list written back as text ("addr/bits,...") parses to the same
 *     list, entry by entry.
 *  3. Every entry's own address, and the last address of its range, match.
 *  4. ssock__cidr_match() agrees with a bit-by-bit reference for the
 *     addresses in the raw bytes, as AF_INET6 and (4-byte groups) as
 *     AF_INET and its IPv4-mapped form, which must answer the same.
 * Any violation aborts.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "fuzz.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_cidr: %s:%d: check failed: %s\n", __FILE__,  \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* Longer lists than this cannot hold SSOCK__CIDR_MAX items plus spaces
 * that matter; the copy stays bounded. */
#define TEXT_MAX 8192

static int bit(const unsigned char *a, int i)
{
    return (a[i / 8] >> (7 - i % 8)) & 1;
}

static int ref_match(const struct ssock__cidr_list *l, const unsigned char *a)
{
    for (int k = 0; k < l->n; k++) {
        int i;
        for (i = 0; i < l->v[k].bits; i++)
            if (bit(a, i) != bit(l->v[k].addr, i))
                break;
        if (i == l->v[k].bits)
            return 1;
    }
    return 0;
}

static int match16(const struct ssock__cidr_list *l, const unsigned char *a)
{
    struct sockaddr_in6 s;
    memset(&s, 0, sizeof s);
    s.sin6_family = AF_INET6;
    memcpy(&s.sin6_addr, a, 16);
    return ssock__cidr_match(l, (struct sockaddr *)&s, sizeof s);
}

static void check_entries(const struct ssock__cidr_list *l)
{
    CHECK(l->n >= 0 && l->n <= SSOCK__CIDR_MAX);
    for (int k = 0; k < l->n; k++) {
        const struct ssock__cidr *c = &l->v[k];
        unsigned char last[16];
        CHECK(c->bits >= 0 && c->bits <= 128);
        for (int i = c->bits; i < 128; i++)
            CHECK(bit(c->addr, i) == 0);
        memcpy(last, c->addr, 16);
        for (int i = c->bits; i < 128; i++)
            last[i / 8] |= (unsigned char)(0x80u >> (i % 8));
        CHECK(match16(l, c->addr) == 1);
        CHECK(match16(l, last) == 1);
        CHECK(ref_match(l, last) == 1);
    }
}

static void check_round_trip(const struct ssock__cidr_list *l)
{
    static char text[SSOCK__CIDR_MAX * (INET6_ADDRSTRLEN + 8) + 1];
    static struct ssock__cidr_list back;
    size_t at = 0;

    text[0] = '\0';
    for (int k = 0; k < l->n; k++) {
        char ip[INET6_ADDRSTRLEN];
        CHECK(inet_ntop(AF_INET6, l->v[k].addr, ip, sizeof ip) != NULL);
        int w = snprintf(text + at, sizeof text - at, "%s%s/%d", k ? "," : "",
                         ip, l->v[k].bits);
        CHECK(w > 0 && (size_t)w < sizeof text - at);
        at += (size_t)w;
    }
    CHECK(ssock__cidr_parse(text, &back) == 0);
    CHECK(back.n == l->n);
    for (int k = 0; k < l->n; k++) {
        CHECK(back.v[k].bits == l->v[k].bits);
        CHECK(memcmp(back.v[k].addr, l->v[k].addr, 16) == 0);
    }
}

static void check_addresses(const struct ssock__cidr_list *l,
                            const uint8_t *raw, size_t n)
{
    for (size_t off = 0; off + 16 <= n; off += 16)
        CHECK(match16(l, raw + off) == ref_match(l, raw + off));
    for (size_t off = 0; off + 4 <= n; off += 4) {
        unsigned char mapped[16] = {0};
        struct sockaddr_in s4;
        mapped[10] = mapped[11] = 0xFF;
        memcpy(mapped + 12, raw + off, 4);
        memset(&s4, 0, sizeof s4);
        s4.sin_family = AF_INET;
        memcpy(&s4.sin_addr, raw + off, 4);
        int m4 = ssock__cidr_match(l, (struct sockaddr *)&s4, sizeof s4);
        CHECK(m4 == match16(l, mapped));
        CHECK(m4 == ref_match(l, mapped));
        /* Too short: never a match. */
        CHECK(ssock__cidr_match(l, (struct sockaddr *)&s4, sizeof s4 - 1) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char text[TEXT_MAX + 1];
    static struct ssock__cidr_list l;
    const uint8_t *nul = memchr(data, 0, size);
    size_t tlen = nul != NULL ? (size_t)(nul - data) : size;
    const uint8_t *raw = nul != NULL ? nul + 1 : data + size;
    size_t rawlen = (size_t)(data + size - raw);

    if (tlen > TEXT_MAX)
        return 0;
    memcpy(text, data, tlen);
    text[tlen] = '\0';

    memset(&l, 0xA5, sizeof l);
    int rc = ssock__cidr_parse(text, &l);
    CHECK(rc == 0 || rc == SSOCK_EBADADDR);
    if (rc != 0) {
        CHECK(l.n == 0);
        return 0;
    }
    check_entries(&l);
    check_round_trip(&l);
    check_addresses(&l, raw, rawlen);
    return 0;
}
