/*
 * PROXY protocol v1/v2 header parser: pure, no I/O, no allocation (see
 * proxy.h for the contract).
 *
 * Both versions are parsed strictly left to right, answering MORE as soon
 * as the next byte needed has not arrived (v1 through a cursor that also
 * enforces the 107-byte limit; v2 checks its fixed 16 bytes one by one,
 * then waits for 16 + length before reading the block). Every decision is
 * taken on bytes already seen, in the same order whatever `len` is, so a
 * shorter prefix can only answer MORE or what the whole input answers: the
 * acceptor may call again after every read and never sees a verdict change.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "proxy.h"

#define MORE SSOCK__PROXY_MORE
#define BAD (-EPROTO)

/* v2 signature: 12 bytes, then version/command, family, length. */
static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
#define V2_FIXED 16

#define PP2_TYPE_ALPN 0x01
#define PP2_TYPE_AUTHORITY 0x02
#define PP2_TYPE_UNIQUE_ID 0x05

/* ---- v1 ----------------------------------------------------------------- */

struct cursor {
    const uint8_t *buf;
    size_t len; /* bytes available */
    size_t pos; /* next byte to read */
};

/* The next byte, or MORE when it has not arrived, or BAD when it would be
 * past the longest line. */
static int next(struct cursor *c, uint8_t *ch)
{
    if (c->pos >= SSOCK__PROXY_V1_MAX)
        return BAD;
    if (c->pos >= c->len)
        return MORE;
    *ch = c->buf[c->pos++];
    return 0;
}

static int expect(struct cursor *c, const char *lit)
{
    for (; *lit != '\0'; lit++) {
        uint8_t ch;
        int rc = next(c, &ch);
        if (rc != 0)
            return rc;
        if (ch != (uint8_t)*lit)
            return BAD;
    }
    return 0;
}

enum field_kind { F_V4, F_V6, F_PORT };

static int in_class(enum field_kind k, uint8_t ch)
{
    int digit = ch >= '0' && ch <= '9';
    switch (k) {
    case F_V4:
        return digit || ch == '.';
    case F_V6:
        return digit || ch == ':' || (ch >= 'a' && ch <= 'f') ||
               (ch >= 'A' && ch <= 'F');
    case F_PORT:
        return digit;
    }
    return 0;
}

/*
 * One non-empty field of `kind` characters, at most cap - 1 of them,
 * ended by `term` (consumed). The text goes to out, NUL-terminated.
 */
static int field(struct cursor *c, enum field_kind kind, uint8_t term,
                 char *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        uint8_t ch;
        int rc = next(c, &ch);
        if (rc != 0)
            return rc;
        if (ch == term)
            break;
        if (!in_class(kind, ch) || n + 1 >= cap)
            return BAD;
        out[n++] = (char)ch;
    }
    if (n == 0)
        return BAD;
    out[n] = '\0';
    return 0;
}

/* Four decimal numbers 0..255 separated by single dots, no leading zeros
 * (the specification's canonical form; inet_pton's leniency varies). */
static int parse_v4(const char *s, struct in_addr *out)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++) {
        unsigned v = 0;
        int digits = 0;
        if (i > 0 && *s++ != '.')
            return BAD;
        if (s[0] == '0' && s[1] >= '0' && s[1] <= '9')
            return BAD;
        while (*s >= '0' && *s <= '9' && digits < 3) {
            v = v * 10 + (unsigned)(*s++ - '0');
            digits++;
        }
        if (digits == 0 || v > 255)
            return BAD;
        b[i] = (uint8_t)v;
    }
    if (*s != '\0')
        return BAD;
    memcpy(out, b, 4);
    return 0;
}

static int parse_port(const char *s, uint16_t *port)
{
    unsigned long v = 0;
    if (s[0] == '0' && s[1] != '\0')
        return BAD;
    for (; *s != '\0'; s++)
        v = v * 10 + (unsigned long)(*s - '0'); /* at most 5 digits */
    if (v > 65535)
        return BAD;
    *port = htons((uint16_t)v);
    return 0;
}

/* " a b p q\r\n" after "PROXY TCP4" / "PROXY TCP6". */
static int v1_tcp(struct cursor *c, int family, struct ssock__proxy_result *r)
{
    /* IPv4: 15 characters at most; IPv6: 39 (eight groups of four). */
    char src[40], dst[40], sport[6], dport[6];
    enum field_kind k = family == AF_INET ? F_V4 : F_V6;
    size_t cap = family == AF_INET ? 16 : 40;
    uint16_t sp, dp;
    int rc;

    if ((rc = field(c, k, ' ', src, cap)) != 0)
        return rc;
    if (family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&r->src;
        if (parse_v4(src, &s4->sin_addr) != 0)
            return BAD;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&r->src;
        if (inet_pton(AF_INET6, src, &s6->sin6_addr) != 1)
            return BAD;
    }
    if ((rc = field(c, k, ' ', dst, cap)) != 0)
        return rc;
    if (family == AF_INET) {
        struct sockaddr_in *d4 = (struct sockaddr_in *)&r->dst;
        if (parse_v4(dst, &d4->sin_addr) != 0)
            return BAD;
    } else {
        struct sockaddr_in6 *d6 = (struct sockaddr_in6 *)&r->dst;
        if (inet_pton(AF_INET6, dst, &d6->sin6_addr) != 1)
            return BAD;
    }
    if ((rc = field(c, F_PORT, ' ', sport, sizeof sport)) != 0)
        return rc;
    if (parse_port(sport, &sp) != 0)
        return BAD;
    if ((rc = field(c, F_PORT, '\r', dport, sizeof dport)) != 0)
        return rc;
    if (parse_port(dport, &dp) != 0)
        return BAD;
    if ((rc = expect(c, "\n")) != 0)
        return rc;

    if (family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&r->src;
        struct sockaddr_in *d4 = (struct sockaddr_in *)&r->dst;
        s4->sin_family = d4->sin_family = AF_INET;
        s4->sin_port = sp;
        d4->sin_port = dp;
        r->src_len = r->dst_len = sizeof(struct sockaddr_in);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&r->src;
        struct sockaddr_in6 *d6 = (struct sockaddr_in6 *)&r->dst;
        s6->sin6_family = d6->sin6_family = AF_INET6;
        s6->sin6_port = sp;
        d6->sin6_port = dp;
        r->src_len = r->dst_len = sizeof(struct sockaddr_in6);
    }
    return 0;
}

/* After "PROXY UNKNOWN": "\r\n", or " " and anything up to the first CR or
 * LF, which must be CRLF (a lone CR or LF never ends or sits in the line). */
static int v1_unknown(struct cursor *c)
{
    uint8_t ch;
    int rc = next(c, &ch);
    if (rc != 0)
        return rc;
    if (ch == ' ') {
        do {
            if ((rc = next(c, &ch)) != 0)
                return rc;
            if (ch == '\n')
                return BAD;
        } while (ch != '\r');
    } else if (ch != '\r') {
        return BAD;
    }
    return expect(c, "\n");
}

static int parse_v1(const uint8_t *buf, size_t len,
                    struct ssock__proxy_result *r)
{
    static const char *const protos[] = {"TCP4", "TCP6", "UNKNOWN"};
    struct cursor c = {buf, len, 0};
    char proto[8];
    size_t n = 0;
    int rc;

    if ((rc = expect(&c, "PROXY ")) != 0)
        return rc;
    /* The protocol name, refused at its first byte that no name has. */
    for (;;) {
        uint8_t ch;
        int known = 0;
        if ((rc = next(&c, &ch)) != 0)
            return rc;
        proto[n++] = (char)ch;
        for (size_t i = 0; i < 3; i++)
            if (strlen(protos[i]) >= n && memcmp(protos[i], proto, n) == 0)
                known = 1;
        if (!known)
            return BAD;
        if (n == 4 &&
            (memcmp(proto, "TCP4", 4) == 0 || memcmp(proto, "TCP6", 4) == 0)) {
            if ((rc = expect(&c, " ")) != 0)
                return rc;
            r->version = 1;
            rc = v1_tcp(&c, proto[3] == '4' ? AF_INET : AF_INET6, r);
            if (rc != 0)
                return rc;
            r->header_len = c.pos;
            return 0;
        }
        if (n == 7)
            break; /* "UNKNOWN", the only 7-byte name */
    }
    if ((rc = v1_unknown(&c)) != 0)
        return rc;
    r->version = 1;
    r->local = 1;
    r->header_len = c.pos;
    return 0;
}

/* ---- v2 ----------------------------------------------------------------- */

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* Address block length of a PROXY command's family/transport byte; -1 for
 * a byte the specification does not define (to be rejected). */
static int v2_addr_len(uint8_t fam)
{
    switch (fam) {
    case 0x00:
        return 0;
    case 0x11:
    case 0x12:
        return 12;
    case 0x21:
    case 0x22:
        return 36;
    case 0x31:
    case 0x32:
        return 216;
    default:
        return -1;
    }
}

static int set_tlv(const uint8_t **ptr, size_t *plen, const uint8_t *v,
                   size_t n)
{
    if (*ptr != NULL)
        return BAD; /* twice: which one would be the truth? */
    *ptr = v;
    *plen = n;
    return 0;
}

/* TLVs in p[0 .. n-1], which they must fill exactly. */
static int v2_tlvs(const uint8_t *p, size_t n, struct ssock__proxy_result *r)
{
    size_t off = 0;
    while (off < n) {
        if (n - off < 3)
            return BAD;
        uint8_t type = p[off];
        size_t vlen = be16(p + off + 1);
        const uint8_t *v = p + off + 3;
        if (n - off - 3 < vlen)
            return BAD;
        int rc = 0;
        switch (type) {
        case PP2_TYPE_ALPN:
            rc = set_tlv(&r->alpn, &r->alpn_len, v, vlen);
            break;
        case PP2_TYPE_AUTHORITY:
            rc = set_tlv(&r->authority, &r->authority_len, v, vlen);
            break;
        case PP2_TYPE_UNIQUE_ID:
            if (vlen > SSOCK__PROXY_UNIQUE_ID_MAX)
                return BAD;
            rc = set_tlv(&r->unique_id, &r->unique_id_len, v, vlen);
            break;
        default:
            break; /* NOOP, CRC32C (not verified), SSL, NETNS, unknown */
        }
        if (rc != 0)
            return rc;
        off += 3 + vlen;
    }
    return 0;
}

static int parse_v2(const uint8_t *buf, size_t len,
                    struct ssock__proxy_result *r)
{
    size_t i;

    for (i = 0; i < sizeof v2_sig; i++) {
        if (i >= len)
            return MORE;
        if (buf[i] != v2_sig[i])
            return BAD;
    }
    if (len < 13)
        return MORE;
    uint8_t ver_cmd = buf[12];
    int cmd = ver_cmd & 0x0F;
    if ((ver_cmd >> 4) != 2 || cmd > 1)
        return BAD;
    if (len < 14)
        return MORE;
    uint8_t fam = buf[13];
    int alen = v2_addr_len(fam);
    if (cmd == 1 && alen < 0)
        return BAD; /* LOCAL ignores the family byte, PROXY must not */
    if (len < V2_FIXED)
        return MORE;
    size_t total = V2_FIXED + (size_t)be16(buf + 14);
    if (total > SSOCK__PROXY_V2_MAX)
        return BAD;
    if (cmd == 1 && total - V2_FIXED < (size_t)alen)
        return BAD;
    if (len < total)
        return MORE;

    r->version = 2;
    r->v2_fam = fam;
    r->header_len = total;
    if (cmd == 0 || fam == 0x00) {
        /* LOCAL, or PROXY for an unspecified protocol: the block (family,
         * addresses, TLVs) is discarded; the TCP peer stands. */
        r->local = 1;
        return 0;
    }
    const uint8_t *a = buf + V2_FIXED;
    int rc = v2_tlvs(a + alen, total - V2_FIXED - (size_t)alen, r);
    if (rc != 0)
        return rc;
    if (fam == 0x11) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&r->src;
        struct sockaddr_in *d4 = (struct sockaddr_in *)&r->dst;
        s4->sin_family = d4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, a, 4);
        memcpy(&d4->sin_addr, a + 4, 4);
        memcpy(&s4->sin_port, a + 8, 2);
        memcpy(&d4->sin_port, a + 10, 2);
        r->src_len = r->dst_len = sizeof(struct sockaddr_in);
    } else if (fam == 0x21) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&r->src;
        struct sockaddr_in6 *d6 = (struct sockaddr_in6 *)&r->dst;
        s6->sin6_family = d6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, a, 16);
        memcpy(&d6->sin6_addr, a + 16, 16);
        memcpy(&s6->sin6_port, a + 32, 2);
        memcpy(&d6->sin6_port, a + 34, 2);
        r->src_len = r->dst_len = sizeof(struct sockaddr_in6);
    } else {
        /* UDP over IPv4/IPv6, UNIX stream/datagram: valid, but not a TCP
         * peer; the specification's fallback is UNSPEC, the TCP peer. */
        r->local = 1;
    }
    return 0;
}

/* ---- entry point -------------------------------------------------------- */

int ssock__proxy_parse(int mode, const uint8_t *buf, size_t len,
                       struct ssock__proxy_result *res)
{
    int rc;

    if (res == NULL)
        return SSOCK_EINVAL;
    memset(res, 0, sizeof(*res));
    if ((buf == NULL && len > 0) || mode < SSOCK__PROXY_V1 ||
        mode > SSOCK__PROXY_ANY)
        return SSOCK_EINVAL;
    if (len == 0)
        return MORE;
    if (buf[0] == 'P')
        rc = (mode & SSOCK__PROXY_V1) ? parse_v1(buf, len, res) : BAD;
    else if (buf[0] == v2_sig[0])
        rc = (mode & SSOCK__PROXY_V2) ? parse_v2(buf, len, res) : BAD;
    else
        rc = BAD;
    if (rc != 0)
        memset(res, 0, sizeof(*res));
    return rc;
}
