/* CIDR lists for the PROXY protocol's trusted sources (see cidr.h): pure
 * functions, no allocation, no global state. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "cidr.h"

/* Longest item text we look at: "[" IPv6-with-IPv4-tail "]" "/128". */
#define CIDR_ITEM_MAX (INET6_ADDRSTRLEN + 2 + 4)

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Decimal 0..max, no sign, no leading zeros; -1 when malformed. */
static int parse_bits(const char *s, size_t n, int max)
{
    int v = 0;

    if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= max ? v : -1;
}

/* 1 when no bit of `a` after the first `bits` is set. */
static int host_bits_clear(const unsigned char a[16], int bits)
{
    for (int i = 0; i < 16; i++) {
        int keep = bits - 8 * i; /* bits of byte i inside the prefix */
        unsigned char mask;
        if (keep >= 8)
            continue;
        mask = (unsigned char)(keep <= 0 ? 0u : 0xFFu << (8 - keep));
        if ((a[i] & (unsigned char)~mask) != 0)
            return 0;
    }
    return 1;
}

/* Parse one item (no surrounding spaces), n bytes at s. */
static int parse_item(const char *s, size_t n, struct ssock__cidr *c)
{
    char buf[CIDR_ITEM_MAX + 1];
    const char *item = s, *slash;
    size_t alen;
    int bracketed = 0, bits = -1;

    if (n == 0 || n > CIDR_ITEM_MAX)
        return SSOCK_EBADADDR;
    if (memchr(s, '\0', n) != NULL)
        return SSOCK_EBADADDR;
    slash = memchr(s, '/', n);
    alen = slash != NULL ? (size_t)(slash - s) : n;
    if (alen >= 2 && s[0] == '[' && s[alen - 1] == ']') {
        bracketed = 1;
        s++;
        alen -= 2;
    }
    if (alen == 0 || alen >= sizeof buf)
        return SSOCK_EBADADDR;
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    /* Brackets left over (unbalanced or inside), zones, spaces: inet_pton
     * rejects them, but say so explicitly. */
    if (strpbrk(buf, "[]% \t") != NULL)
        return SSOCK_EBADADDR;

    memset(c, 0, sizeof(*c));
    struct in_addr v4;
    if (!bracketed && inet_pton(AF_INET, buf, &v4) == 1) {
        c->addr[10] = 0xFF;
        c->addr[11] = 0xFF;
        memcpy(&c->addr[12], &v4, 4);
        if (slash != NULL) {
            bits = parse_bits(slash + 1, n - (size_t)(slash - item) - 1, 32);
            if (bits < 0)
                return SSOCK_EBADADDR;
        } else {
            bits = 32;
        }
        c->bits = 96 + bits;
    } else {
        if (inet_pton(AF_INET6, buf, c->addr) != 1)
            return SSOCK_EBADADDR;
        if (slash != NULL) {
            bits = parse_bits(slash + 1, n - (size_t)(slash - item) - 1, 128);
            if (bits < 0)
                return SSOCK_EBADADDR;
        } else {
            bits = 128;
        }
        c->bits = bits;
    }
    return host_bits_clear(c->addr, c->bits) ? 0 : SSOCK_EBADADDR;
}

int ssock__cidr_parse(const char *text, struct ssock__cidr_list *out)
{
    const char *p;

    if (out == NULL)
        return SSOCK_EINVAL;
    out->n = 0;
    if (text == NULL)
        return SSOCK_EINVAL;

    p = text;
    while (is_space(*p))
        p++;
    if (*p == '\0')
        return 0; /* "" or only spaces: the empty list */

    for (;;) {
        const char *start, *end, *next;
        while (is_space(*p))
            p++;
        start = p;
        while (*p != '\0' && *p != ',')
            p++;
        next = p;
        end = p;
        while (end > start && is_space(end[-1]))
            end--;
        if (out->n == SSOCK__CIDR_MAX ||
            parse_item(start, (size_t)(end - start), &out->v[out->n]) != 0) {
            out->n = 0;
            return SSOCK_EBADADDR;
        }
        out->n++;
        if (*next == '\0')
            return 0;
        p = next + 1; /* past the comma: an item must follow */
    }
}

/* 1 when the first `bits` bits of a and b are equal. */
static int prefix_equal(const unsigned char *a, const unsigned char *b,
                        int bits)
{
    int whole = bits / 8, rest = bits % 8;

    if (memcmp(a, b, (size_t)whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xFFu << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

int ssock__cidr_match(const struct ssock__cidr_list *l,
                      const struct sockaddr *sa, socklen_t len)
{
    unsigned char a[16];

    if (l == NULL || sa == NULL)
        return 0;
    if (sa->sa_family == AF_INET) {
        if (len < (socklen_t)sizeof(struct sockaddr_in))
            return 0;
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
        memset(a, 0, 10);
        a[10] = 0xFF;
        a[11] = 0xFF;
        memcpy(&a[12], &in4->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        if (len < (socklen_t)sizeof(struct sockaddr_in6))
            return 0;
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(a, &in6->sin6_addr, 16);
    } else {
        return 0;
    }
    for (int i = 0; i < l->n && i < SSOCK__CIDR_MAX; i++) {
        if (prefix_equal(a, l->v[i].addr, l->v[i].bits))
            return 1;
    }
    return 0;
}
