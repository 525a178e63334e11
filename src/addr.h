/* Address text <-> sockaddr, with no network access (see addr.c). */
#ifndef SSOCK_ADDR_H
#define SSOCK_ADDR_H

#include <sys/socket.h>

#include "ssock/ssock.h"

/*
 * Parse a numeric address: IPv4 ("127.0.0.1"), IPv6 ("::1"), IPv6 in
 * brackets ("[::1]"), IPv6 with a zone id ("fe80::1%eth0", "[fe80::1%2]").
 * The port of the result is 0.
 * @return 0; SSOCK_ERESOLVE when `text` is not a literal (a host name to
 *         resolve); SSOCK_EBADADDR when empty or malformed (unbalanced
 *         brackets, a zone on IPv4, an empty or unknown zone, NUL bytes).
 */
int ssock__addr_parse_literal(const char *text, struct sockaddr_storage *ss,
                              socklen_t *len);

/*
 * Numeric text of an IPv4/IPv6 address, without brackets; IPv4-mapped IPv6
 * addresses are shown as IPv4; a zone is shown as "%ifname" (or "%index").
 * `port` (optional) receives the port in host order.
 * @return 0 or SSOCK_EBADADDR (unknown family).
 */
int ssock__addr_format(const struct sockaddr *sa, char buf[SSOCK_HOST_MAX],
                       int *port);

#endif
