/* Address parsing and formatting: pure functions, no network access. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

/* Longest literal we accept: an IPv6 address, brackets and a zone name. */
#define ADDR_TEXT_MAX (INET6_ADDRSTRLEN + 2 + IF_NAMESIZE + 1)

static int parse_zone(const char *zone, uint32_t *scope)
{
    if (*zone == '\0')
        return SSOCK_EBADADDR;
    if (strspn(zone, "0123456789") == strlen(zone)) {
        if (strlen(zone) > 10)
            return SSOCK_EBADADDR;
        unsigned long v = strtoul(zone, NULL, 10);
        if (v == 0 || v > UINT32_MAX)
            return SSOCK_EBADADDR;
        *scope = (uint32_t)v;
        return 0;
    }
    if (strlen(zone) >= IF_NAMESIZE)
        return SSOCK_EBADADDR;
    unsigned idx = if_nametoindex(zone);
    if (idx == 0)
        return SSOCK_EBADADDR;
    *scope = idx;
    return 0;
}

int ssock__addr_parse_literal(const char *text, struct sockaddr_storage *ss,
                              socklen_t *len)
{
    char buf[ADDR_TEXT_MAX];
    size_t n;
    int bracketed = 0;

    if (text == NULL || text[0] == '\0')
        return SSOCK_EBADADDR;
    n = strlen(text);
    if (text[0] == '[' || text[n - 1] == ']') {
        if (n < 3 || text[0] != '[' || text[n - 1] != ']')
            return SSOCK_EBADADDR;
        text++;
        n -= 2;
        bracketed = 1;
    }
    if (n >= sizeof(buf)) {
        /* Too long for a literal: a host name (or garbage) at best. */
        return bracketed ? SSOCK_EBADADDR : SSOCK_ERESOLVE;
    }
    memcpy(buf, text, n);
    buf[n] = '\0';
    if (memchr(buf, '[', n) || memchr(buf, ']', n))
        return SSOCK_EBADADDR;

    memset(ss, 0, sizeof(*ss));
    if (!bracketed) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
        if (inet_pton(AF_INET, buf, &in4->sin_addr) == 1) {
            in4->sin_family = AF_INET;
            *len = sizeof(*in4);
            return 0;
        }
    }

    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    char *pct = strchr(buf, '%');
    if (pct != NULL)
        *pct = '\0';
    if (inet_pton(AF_INET6, buf, &in6->sin6_addr) != 1) {
        struct in_addr v4;
        /* "1.2.3.4%eth0" or "[1.2.3.4]": an IPv4 literal in IPv6 dress. */
        if (pct != NULL || bracketed)
            return inet_pton(AF_INET, buf, &v4) == 1 || bracketed ||
                           strchr(buf, ':') != NULL
                       ? SSOCK_EBADADDR
                       : SSOCK_ERESOLVE;
        /* Colons cannot appear in host names. */
        return strchr(buf, ':') != NULL ? SSOCK_EBADADDR : SSOCK_ERESOLVE;
    }
    in6->sin6_family = AF_INET6;
    if (pct != NULL) {
        uint32_t scope = 0;
        int rc = parse_zone(pct + 1, &scope);
        if (rc != 0)
            return rc;
        in6->sin6_scope_id = scope;
    }
    *len = sizeof(*in6);
    return 0;
}

int ssock__addr_format(const struct sockaddr *sa, char buf[SSOCK_HOST_MAX],
                       int *port)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in4->sin_addr, buf, SSOCK_HOST_MAX);
        if (port != NULL)
            *port = ntohs(in4->sin_port);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (port != NULL)
            *port = ntohs(in6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], buf,
                      SSOCK_HOST_MAX);
            return 0;
        }
        inet_ntop(AF_INET6, &in6->sin6_addr, buf, SSOCK_HOST_MAX);
        if (in6->sin6_scope_id != 0) {
            char ifname[IF_NAMESIZE];
            size_t used = strlen(buf);
            if (if_indextoname(in6->sin6_scope_id, ifname) != NULL)
                snprintf(buf + used, SSOCK_HOST_MAX - used, "%%%s", ifname);
            else
                snprintf(buf + used, SSOCK_HOST_MAX - used, "%%%u",
                         (unsigned)in6->sin6_scope_id);
        }
        return 0;
    }
    buf[0] = '\0';
    if (port != NULL)
        *port = 0;
    return SSOCK_EBADADDR;
}
