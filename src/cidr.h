/*
 * CIDR lists (the PROXY protocol's trusted sources): pure, no I/O, no
 * allocation, no global state, like addr.c and proxy.c.
 *
 * One representation for both families: every prefix is kept as a 128-bit
 * IPv6 prefix, IPv4 ones as IPv4-mapped addresses, so "10.0.0.0/8" is
 * stored as ::ffff:10.0.0.0/104 and matches both an AF_INET peer 10.1.2.3
 * and the IPv4-mapped peer ::ffff:10.1.2.3 a dual-stack listener reports.
 * Consequences, by design: "::ffff:10.0.0.0/104" is the same entry as
 * "10.0.0.0/8"; an IPv6 prefix that covers ::ffff:0:0/96 (such as "::/0")
 * covers every IPv4 address too; "0.0.0.0/0" covers IPv4 only.
 */
#ifndef SSOCK_CIDR_H
#define SSOCK_CIDR_H

#include <sys/socket.h>

#include "ssock/ssock.h"

/* Most entries in one list (ssock__cidr_parse() fails beyond). */
#define SSOCK__CIDR_MAX 64

/* One prefix: the first `bits` bits of `addr` (network order), 0..128;
 * the bits after the prefix are zero. */
struct ssock__cidr {
    unsigned char addr[16];
    int bits;
};

/* A parsed list: entries v[0 .. n-1] in the order written. n == 0 is the
 * empty list, which matches nothing. */
struct ssock__cidr_list {
    int n;
    struct ssock__cidr v[SSOCK__CIDR_MAX];
};

/*
 * Parse a comma-separated list of prefixes, e.g. "127.0.0.0/8, ::1/128".
 *
 * Items: an IPv4 address in dotted-quad form (four decimal numbers
 * 0..255), optionally "/N" with N in 0..32; or an IPv6 address (RFC 4291
 * text, an embedded IPv4 tail allowed), bare or in brackets
 * ("[2001:db8::]/32"), optionally "/N" with N in 0..128. A bare address is
 * a /32 or /128. N is decimal without sign or leading zeros ("0" itself is
 * allowed).
 *
 * Strict, because a trust list with a typo must not silently trust the
 * wrong hosts: an address with bits set after its prefix ("10.0.0.1/8",
 * "::1/64") is rejected, not masked. Spaces and tabs around an item are
 * allowed, nowhere else. The empty string, or one of only spaces, is the
 * valid empty list (nobody is trusted). Empty items (",", "a,,b", "a,"),
 * zone ids ("fe80::1%eth0"), IPv4 in brackets, host names, prefixes out of
 * range and more than SSOCK__CIDR_MAX entries are all malformed.
 *
 * @return 0 and `*out` filled; SSOCK_EBADADDR (malformed: `*out` is then
 *         the empty list); SSOCK_EINVAL (NULL argument).
 */
int ssock__cidr_parse(const char *text, struct ssock__cidr_list *out);

/*
 * 1 when the address is inside one of the list's prefixes, else 0.
 * AF_INET (len >= sizeof(struct sockaddr_in)) and AF_INET6 (len >=
 * sizeof(struct sockaddr_in6); the scope id is ignored; IPv4-mapped
 * addresses are IPv4 addresses, see above). 0 for any other family, a
 * short `len`, and NULL arguments.
 */
int ssock__cidr_match(const struct ssock__cidr_list *l,
                      const struct sockaddr *sa, socklen_t len);

#endif
