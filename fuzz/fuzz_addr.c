/*
 * Address text <-> sockaddr: ssock__addr_parse_literal() and
 * ssock__addr_format(), the code behind every constructor's `addr`. No
 * network access (zone names are looked up with if_nametoindex(), which only
 * asks the kernel for the interface table).
 *
 * Each input is used twice:
 *  1. as text (up to its first NUL): parse it; a parsed literal must format
 *     to text that parses back to the same sockaddr (IPv4-mapped IPv6 comes
 *     back as the IPv4 address, as documented), and formatting that gives
 *     the same text again. Brackets must not change the meaning of an IPv6
 *     literal, and plain inet_pton() literals must be accepted unchanged.
 *  2. as raw bytes of an address (IPv6 address, scope id, port; IPv4
 *     address, port; an arbitrary family): format, then parse back.
 * Any violation aborts.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "fuzz.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_addr: %s:%d: check failed: %s\n", __FILE__,  \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* Longer texts than this are never literals; keep the copy bounded. */
#define TEXT_MAX 512

static void check_formatted(const char *buf)
{
    size_t n = strnlen(buf, SSOCK_HOST_MAX);
    CHECK(n < SSOCK_HOST_MAX);
    CHECK(n > 0);
    CHECK(strchr(buf, '[') == NULL && strchr(buf, ']') == NULL);
}

/* Same address: `b` was parsed back from the text of `a`. */
static void check_same(const struct sockaddr_storage *a,
                       const struct sockaddr_storage *b, socklen_t blen)
{
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        CHECK(b->ss_family == AF_INET);
        CHECK(blen == sizeof(*y));
        CHECK(x->sin_addr.s_addr == y->sin_addr.s_addr);
        return;
    }
    CHECK(a->ss_family == AF_INET6);
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
    if (IN6_IS_ADDR_V4MAPPED(&x->sin6_addr)) {
        /* Documented: shown as IPv4, so it comes back as IPv4. */
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        CHECK(b->ss_family == AF_INET);
        CHECK(blen == sizeof(*y));
        CHECK(memcmp(&y->sin_addr, &x->sin6_addr.s6_addr[12], 4) == 0);
        return;
    }
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
    CHECK(b->ss_family == AF_INET6);
    CHECK(blen == sizeof(*y));
    CHECK(memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0);
    CHECK(x->sin6_scope_id == y->sin6_scope_id);
}

/* format(sa) parses back to sa, and format is stable across the trip. */
static void round_trip(const struct sockaddr_storage *ss, int want_port)
{
    char text[SSOCK_HOST_MAX], again[SSOCK_HOST_MAX];
    struct sockaddr_storage back;
    socklen_t blen = 0;
    int port = -1;

    memset(text, 'X', sizeof(text));
    CHECK(ssock__addr_format((const struct sockaddr *)ss, text, &port) == 0);
    check_formatted(text);
    CHECK(port == want_port);
    /* The port pointer is optional. */
    CHECK(ssock__addr_format((const struct sockaddr *)ss, again, NULL) == 0);
    CHECK(strcmp(text, again) == 0);

    int rc = ssock__addr_parse_literal(text, &back, &blen);
    if (rc != 0) {
        fprintf(stderr, "fuzz_addr: formatted \"%s\" does not parse (%d)\n",
                text, rc);
        abort();
    }
    check_same(ss, &back, blen);

    CHECK(ssock__addr_format((struct sockaddr *)&back, again, &port) == 0);
    CHECK(port == 0);
    if (strcmp(text, again) != 0) {
        fprintf(stderr, "fuzz_addr: \"%s\" formats back as \"%s\"\n", text,
                again);
        abort();
    }
}

static void check_parsed(const struct sockaddr_storage *ss, socklen_t len)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)ss;
        CHECK(len == sizeof(*in4));
        CHECK(in4->sin_port == 0);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        CHECK(ss->ss_family == AF_INET6);
        CHECK(len == sizeof(*in6));
        CHECK(in6->sin6_port == 0);
        CHECK(in6->sin6_flowinfo == 0);
    }
}

static void fuzz_text(const char *text)
{
    struct sockaddr_storage ss, other;
    socklen_t len = 0, olen = 0;
    size_t n = strlen(text);

    memset(&ss, 0xA5, sizeof(ss));
    int rc = ssock__addr_parse_literal(text, &ss, &len);
    CHECK(rc == 0 || rc == SSOCK_ERESOLVE || rc == SSOCK_EBADADDR);
    if (n == 0)
        CHECK(rc == SSOCK_EBADADDR);

    /* What inet_pton() accepts as it is must be taken unchanged. */
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, text, &a4) == 1) {
        CHECK(rc == 0 && ss.ss_family == AF_INET);
        CHECK(((struct sockaddr_in *)&ss)->sin_addr.s_addr == a4.s_addr);
    } else if (inet_pton(AF_INET6, text, &a6) == 1) {
        CHECK(rc == 0 && ss.ss_family == AF_INET6);
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        CHECK(memcmp(&in6->sin6_addr, &a6, sizeof(a6)) == 0);
        CHECK(in6->sin6_scope_id == 0);
    }
    if (rc != 0)
        return;

    check_parsed(&ss, len);
    round_trip(&ss, 0);

    /* Brackets do not change the meaning of an IPv6 literal. */
    char *alt = malloc(n + 3);
    CHECK(alt != NULL);
    int bracketed = text[0] == '[';
    if (bracketed) {
        CHECK(ss.ss_family == AF_INET6);
        memcpy(alt, text + 1, n - 2);
        alt[n - 2] = '\0';
    } else {
        alt[0] = '[';
        memcpy(alt + 1, text, n);
        alt[n + 1] = ']';
        alt[n + 2] = '\0';
    }
    rc = ssock__addr_parse_literal(alt, &other, &olen);
    if (ss.ss_family == AF_INET6) {
        if (rc != 0) {
            fprintf(stderr, "fuzz_addr: \"%s\" parses but \"%s\" gives %d\n",
                    text, alt, rc);
            abort();
        }
        CHECK(olen == len && memcmp(&ss, &other, len) == 0);
    } else {
        /* "[1.2.3.4]" is not an address. */
        CHECK(rc == SSOCK_EBADADDR);
    }
    free(alt);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void fuzz_binary(const uint8_t *data, size_t size)
{
    struct sockaddr_storage ss;
    char text[SSOCK_HOST_MAX];
    int port = -1;

    if (size >= 22) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        memset(&ss, 0, sizeof(ss));
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, data, 16);
        in6->sin6_scope_id = get32(data + 16);
        memcpy(&in6->sin6_port, data + 20, 2);
        round_trip(&ss, ntohs(in6->sin6_port));
    }
    if (size >= 6) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
        memset(&ss, 0, sizeof(ss));
        in4->sin_family = AF_INET;
        memcpy(&in4->sin_addr, data, 4);
        memcpy(&in4->sin_port, data + 4, 2);
        round_trip(&ss, ntohs(in4->sin_port));
    }
    if (size >= 2) {
        /* Any other family is refused, with an empty text and port 0. */
        memset(&ss, 0, sizeof(ss));
        ss.ss_family = (sa_family_t)(data[0] | data[1] << 8);
        if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) {
            memset(text, 'X', sizeof(text));
            CHECK(ssock__addr_format((struct sockaddr *)&ss, text, &port) ==
                  SSOCK_EBADADDR);
            CHECK(text[0] == '\0' && port == 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = size < TEXT_MAX ? size : TEXT_MAX;
    char *text = malloc(n + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, n);
    text[n] = '\0';
    fuzz_text(text);
    free(text);
    fuzz_binary(data, size);
    return 0;
}
