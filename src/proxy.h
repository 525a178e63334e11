/*
 * PROXY protocol v1 and v2 header parser (the HAProxy specification,
 * doc/proxy-protocol.txt): pure, no I/O, no allocation, no global state.
 *
 * Made for incremental, non-blocking use: the acceptor keeps the bytes it
 * has received so far at the start of a connection and calls
 * ssock__proxy_parse() again after every read. The answer depends only on
 * those bytes, and is monotonic: once a prefix of the stream gives 0 or an
 * error, every longer prefix gives the same answer (and the same result),
 * and a prefix that gives SSOCK__PROXY_MORE can still become either. A
 * malformed header is rejected as soon as the bytes seen prove it (the
 * first byte of a TLS ClientHello is enough), never later than 107 bytes
 * (v1) or 16 + length bytes (v2).
 */
#ifndef SSOCK_PROXY_H
#define SSOCK_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ssock/ssock.h"

/* Which versions a server accepts (`mode`). */
enum { SSOCK__PROXY_V1 = 1, SSOCK__PROXY_V2 = 2, SSOCK__PROXY_ANY = 3 };

/* Returned while the header is incomplete: read more and call again. */
#define SSOCK__PROXY_MORE 1

/* Longest v1 line, CRLF included (the specification's worst case). */
#define SSOCK__PROXY_V1_MAX 107
/* Longest v2 header we accept (16 + length); the protocol allows 65551. */
#define SSOCK__PROXY_V2_MAX 4096
/* Longest PP2_TYPE_UNIQUE_ID value (the specification's limit). */
#define SSOCK__PROXY_UNIQUE_ID_MAX 128

struct ssock__proxy_result {
    int version; /* 1 or 2 */
    /*
     * 1: use the TCP peer, as if there were no header. Set for v1 UNKNOWN,
     * v2 LOCAL, and v2 PROXY with a valid family/transport byte this
     * library does not map to a TCP peer (UNSPEC 0x00, UDP 0x12/0x22,
     * UNIX 0x31/0x32): the specification lets a receiver fall back to
     * UNSPEC ("use the real connection endpoints") for those. src/dst are
     * then zero with zero lengths.
     */
    int local;
    int v2_fam; /* v2: the raw family/transport byte (0x11, 0x21...); else 0 */
    /* !local: the original client (src) and the address it connected to
     * (dst), AF_INET or AF_INET6 with the port, in network order as usual;
     * v1 TCP6 and v2 0x21 give AF_INET6 even for IPv4-mapped addresses. */
    struct sockaddr_storage src, dst;
    socklen_t src_len, dst_len;
    size_t header_len; /* bytes of the header: the stream continues after */
    /*
     * v2 PROXY TLVs, pointers INTO the caller's buffer (valid while it
     * is); NULL and 0 when absent, non-NULL with length 0 when present and
     * empty. Not validated beyond their bounds (UTF-8, ALPN syntax): they
     * are the sender's words. Not set for LOCAL or UNSPEC (the block is
     * discarded, as the specification says).
     */
    const uint8_t *authority; /* PP2_TYPE_AUTHORITY (0x02) */
    size_t authority_len;
    const uint8_t *alpn; /* PP2_TYPE_ALPN (0x01) */
    size_t alpn_len;
    const uint8_t *unique_id; /* PP2_TYPE_UNIQUE_ID (0x05), <= 128 bytes */
    size_t unique_id_len;
};

/*
 * Parse the PROXY header at the start of a connection, from the `len` bytes
 * received so far. Reads only buf[0 .. min(len, header) - 1]: never past
 * buf[len], never past the header even when more bytes follow.
 *
 * v1: "PROXY TCP4 a b p q\r\n", "PROXY TCP6 a b p q\r\n" with single
 * spaces, addresses in the family's canonical text (IPv4: four decimal
 * numbers 0..255 without leading zeros; IPv6: hex groups and colons, at
 * most 39 characters, no embedded IPv4), decimal ports 0..65535 without
 * leading zeros; or "PROXY UNKNOWN\r\n" / "PROXY UNKNOWN <anything>\r\n"
 * (local). The line ends at its first CR or LF, which must be CRLF; at most
 * 107 bytes.
 *
 * v2: the 12-byte signature, version 2, command LOCAL (any family byte, the
 * block is skipped) or PROXY with a family/transport byte of the
 * specification (0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32) and a length
 * at least that family's address block (0, 12, 36, 216); 16 + length <=
 * SSOCK__PROXY_V2_MAX. After the addresses, TLVs (type, 2-byte length,
 * value) must fill the rest exactly; AUTHORITY, ALPN and UNIQUE_ID
 * (<= 128 bytes) are exposed, a repeated one is malformed, all others
 * (NOOP, CRC32C — not verified —, SSL, NETNS, unknown) are skipped.
 *
 * @return 0 and `*res` filled: a complete, valid header of a version
 *         `mode` allows;
 *         SSOCK__PROXY_MORE (positive): valid so far, need more bytes;
 *         -EPROTO: malformed, too long, or of a version `mode` excludes;
 *         SSOCK_EINVAL: NULL `res`, NULL `buf` with len > 0, or `mode` not
 *         one of the SSOCK__PROXY_* values.
 *         `*res` is zeroed on every non-zero return.
 */
int ssock__proxy_parse(int mode, const uint8_t *buf, size_t len,
                       struct ssock__proxy_result *res);

#endif
