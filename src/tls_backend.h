/*
 * tls_backend.h — the internal table every TLS backend implements, and the
 * accessors the core uses on a ssock_tls_config. Not installed.
 *
 * Layers: tls.c (backend-neutral front: options, validation, file reading,
 * refcount, backend selection) -> one table per backend (tls_mbedtls.c,
 * tls_openssl.c) -> the transport, reached ONLY through struct
 * ssock__tls_io. The same backend code therefore runs over a socket, a
 * socketpair or a fuzz buffer.
 *
 * Threads: a backend config (bcfg) is immutable after config_new (the one
 * exception, set_rng, runs before any session exists) and may be used by
 * many sessions on many threads at once. A session is used by one
 * thread at a time. The caller keeps the bcfg alive (by holding a
 * ssock_tls_config reference) until every session made from it is freed.
 * Backends never print, never touch signals, and keep error text only in
 * the buffers below.
 */
#ifndef SSOCK_TLS_BACKEND_H
#define SSOCK_TLS_BACKEND_H

#include <stddef.h>
#include <sys/types.h>

#include "ssock/tls.h"

#if defined(__GNUC__)
#define SSOCK__TLS_NODISCARD __attribute__((warn_unused_result))
#else
#define SSOCK__TLS_NODISCARD
#endif

/* The only way a backend reaches the transport. */
struct ssock__tls_io {
    void *ctx;
    /* >0 bytes moved; recv: 0 = transport EOF; -1 with errno set:
     * EAGAIN/EWOULDBLOCK = would block (backends also treat EINTR so),
     * anything else = error (the backend returns it as -errno). */
    ssize_t (*send)(void *ctx, const void *buf, size_t len);
    ssize_t (*recv)(void *ctx, void *buf, size_t len);
};

#define SSOCK__TLS_WANT_READ 1
#define SSOCK__TLS_WANT_WRITE 2

/* Strings and arrays valid for the session's life; NULL = none / not yet
 * known. cipher is the IANA name on both backends; group the IANA name of
 * the key-exchange group in lower case ("x25519", "secp256r1"). peer_subject
 * and the peer chain (peer_count DER certificates as the client sent them,
 * leaf first) only for a client certificate that was sent and verified. */
struct ssock__tls_info {
    const char *version, *cipher, *group, *alpn, *sni, *peer_subject;
    size_t peer_count;
    const unsigned char *const *peer_der;
    const size_t *peer_len;
};

/* Text the backends leave in their session error when the verify hook
 * (ssock_tls_options.verify_peer) rejected the client certificate. */
#define SSOCK__TLS_REJECTED_BY_HOOK "client certificate rejected by verify_peer"

/* The IANA name of a TLS group id, lower case, or NULL (tls.c). */
const char *ssock__tls_group_name(unsigned id);

/*
 * config_new receives options already checked and normalised by tls.c:
 *  - backend is this backend; verify_client, min_version, alpn,
 *    handshake_timeout_ms, max_handshakes (1..SSOCK_TLS_MAX_HANDSHAKES_LIMIT),
 *    max_handshakes_per_source (>= 0), source_prefix_v6 (0..128) hold valid
 *    values;
 *  - struct_size is sizeof(ssock_tls_options) (fields the caller's
 *    older struct lacked are at their defaults); keylog / keylog_arg and
 *    verify_peer / verify_peer_arg are the caller's (NULL: off);
 *  - cert_mem/cert_len and key_mem/key_len are always set, and ca_mem/ca_len
 *    when a CA was given (ca_mem NULL otherwise); each buffer is followed by
 *    a NUL byte not counted in its length (so PEM can be handed to parsers
 *    that want the NUL). The *_file fields are kept only to name the input
 *    in messages (NULL = came from memory);
 *  - extra_certs / extra_cert_count (0..SSOCK_TLS_MAX_EXTRA_CERTS; NULL
 *    when 0): the same for every extra pair, cert_mem/cert_len and
 *    key_mem/key_len always set (the array and the buffers are tls.c's,
 *    valid during the call only). The backend checks each pair as pair 0,
 *    names it in messages with ssock__tls_pair_what(), and, when there is
 *    more than pair 0, fills a struct ssock__tls_sni with the names of
 *    every pair's leaf and serves the pair ssock__tls_sni_pick() chooses
 *    for the client's server name (pair 0 for none).
 * On failure it writes a one-line message to err (never NULL, errlen > 0)
 * and returns a negative SSOCK_E*: SSOCK_EVERSION, SSOCK_ECERTPARSE,
 * SSOCK_EKEYMISMATCH, SSOCK_ECERTTIME, SSOCK_ETLSCONFIG, SSOCK_ENOMEM. On
 * success it returns 0 and leaves warnings (one per line) or "" in err.
 */
struct ssock__tls_backend {
    const char *name;
    int (*config_new)(const ssock_tls_options *o, void **bcfg, char *err,
                      size_t errlen);
    void (*config_free)(void *bcfg);
    /* 0 / SSOCK_ENOMEM / SSOCK_ETLS. `io` is copied. */
    int (*session_new)(void *bcfg, const struct ssock__tls_io *io, void **sess);
    /* 0 done; WANT_READ/WANT_WRITE; negative: SSOCK_ETLS (or -errno from
     * io, or SSOCK_EOF if the peer closed). */
    int (*handshake)(void *sess);
    /* 0 with *n > 0; WANT_*; SSOCK_EOF on the peer's close_notify,
     * SSOCK_ETRUNCATED on a transport EOF without one; negative
     * (SSOCK_ETLS, -errno). *n is 0 unless the result is 0. */
    int (*read)(void *sess, void *buf, size_t len, size_t *n);
    /* 0 with *n > 0 consumed (may be less than len: the caller loops);
     * WANT_*; negative. After WANT_* call again with the same bytes (the
     * buffer may move) and at least the same len. */
    int (*write)(void *sess, const void *buf, size_t len, size_t *n);
    /* decrypted bytes readable without I/O */
    size_t (*pending)(void *sess);
    /* 0 sent; WANT_WRITE (call again); negative */
    int (*close_notify)(void *sess);
    void (*session_free)(void *sess); /* NULL ok */
    void (*info)(void *sess, struct ssock__tls_info *out);
    /* last backend error text of this session, or "" */
    const char *(*session_error)(void *sess);
    /* Optional (NULL: the backend cannot). Make every later session of
     * bcfg draw its random numbers from f_rng(p_rng, ...) instead of the
     * backend's own generator: 0, or a negative SSOCK_E*. Only reached
     * through ssock__tls_config_set_test_rng(), while no session of bcfg
     * exists. */
    int (*set_rng)(void *bcfg, int (*f_rng)(void *, unsigned char *, size_t),
                   void *p_rng);
};

/* Only those built (see SSOCK_HAVE_* in ssock/features.h). */
#if SSOCK_HAVE_MBEDTLS
extern const struct ssock__tls_backend ssock__tls_mbedtls;
#endif
#if SSOCK_HAVE_OPENSSL
extern const struct ssock__tls_backend ssock__tls_openssl;
#endif

/* Table for a backend id (DEFAULT resolved), or NULL if not built. */
const struct ssock__tls_backend *ssock__tls_backend_get(int backend);

/* Take one more reference (for a server or socket); returns cfg. NULL ok. */
ssock_tls_config *ssock__tls_config_ref(const ssock_tls_config *cfg);
/* Drop one reference; the last one frees the config. NULL ok. */
void ssock__tls_config_unref(ssock_tls_config *cfg);

const struct ssock__tls_backend *
ssock__tls_config_backend(const ssock_tls_config *cfg);
void *ssock__tls_config_bcfg(const ssock_tls_config *cfg);
int ssock__tls_config_handshake_timeout(const ssock_tls_config *cfg);
int ssock__tls_config_max_handshakes(const ssock_tls_config *cfg);
/* Effective per-source cap on handshakes in flight: never 0 (the default
 * replaced), at most max_handshakes. SSOCK_EINVAL for NULL. */
int ssock__tls_config_max_per_source(const ssock_tls_config *cfg);
/* Effective IPv6 source prefix length, 1..128 (default 64). SSOCK_EINVAL
 * for NULL. */
int ssock__tls_config_source_prefix6(const ssock_tls_config *cfg);

/*
 * FOR FUZZING AND TESTS ONLY: a predictable random source makes every
 * session key predictable. Not exported, not in include/.
 *
 * Every session made from `cfg` from now on takes its random numbers (on
 * mbedTLS 2.28: ServerHello random and session id, ECDHE key, ECDSA and
 * ECDH blinding) from f_rng(p_rng, buf, len), which returns 0 on success
 * or a negative mbedTLS-style error (the handshake then fails). With a
 * fixed stream, restarted before each connection, the server answers the
 * same client bytes with the same bytes (but see the clock, below).
 * f_rng is called from whatever thread runs a handshake, so it must be
 * safe there (fuzz harnesses run one connection at a time).
 *
 * Call it right after ssock_tls_config_new(), before the config is given
 * to any server (a server holds a reference, so it is refused while one
 * does; a socket keeps its server alive, so no session can exist then).
 * f_rng and p_rng must stay valid until the config is freed.
 *
 * What stays outside f_rng: mbedTLS 2.28 puts time(NULL) in the first 4
 * bytes of a TLS 1.2 ServerHello.random (MBEDTLS_HAVE_TIME; there is no
 * per-config clock, see fuzz/README.md), and with it the ServerKeyExchange
 * signature and every key change each second; and the clock decides
 * whether a client certificate is within its dates (both backends). On
 * mbedTLS 3.x with PSA (TLS 1.3, MBEDTLS_USE_PSA_CRYPTO) key generation
 * uses PSA's RNG, not this one (untested; Debian ships 2.28).
 *
 * @return 0; SSOCK_EINVAL (NULL cfg or f_rng, or a server holds cfg);
 *         SSOCK_ENOBACKEND if the config's backend cannot do it: OpenSSL
 *         cannot (why: the comment on its table in tls_openssl.c); the
 *         OpenSSL fuzz target fixes the process-wide RAND_METHOD instead
 *         (fuzz/tls_openssl_rng.h).
 */
SSOCK__TLS_NODISCARD int
ssock__tls_config_set_test_rng(ssock_tls_config *cfg,
                               int (*f_rng)(void *, unsigned char *, size_t),
                               void *p_rng);

/*
 * SNI certificate selection, backend-neutral (tls.c): the DNS names of
 * every pair's leaf certificate (subjectAltName DNS names, else the
 * subject's last CN: the backend extracts them; the rules of matching are
 * all here). Built once in config_new, then read-only: ssock__tls_sni_pick
 * may run on many threads at once.
 */
struct ssock__tls_sni_name {
    char *name;   /* lower case; for a wildcard the part after "*." */
    size_t len;   /* of name */
    size_t pair;  /* 0 = cert_* / key_*, i = extra_certs[i - 1] */
    int wildcard; /* 1: "*." + name */
};
struct ssock__tls_sni {
    struct ssock__tls_sni_name *v;
    size_t count, cap;
};

/* An empty table (no allocation). */
void ssock__tls_sni_init(struct ssock__tls_sni *t);
void ssock__tls_sni_free(struct ssock__tls_sni *t); /* NULL ok; re-usable */
/* Add one name of pair `pair`'s certificate (raw bytes of a SAN dNSName
 * or a CN, not NUL-terminated; one trailing dot is dropped). 1 added; 0
 * ignored because it can never match (empty, longer than 255 bytes, a NUL
 * byte, an empty label, a "*" other than as the whole left-most label
 * followed by at least two labels); SSOCK_ENOMEM. */
SSOCK__TLS_NODISCARD int ssock__tls_sni_add(struct ssock__tls_sni *t,
                                            size_t pair, const void *name,
                                            size_t len);
/* The pair for the server name a client sent (`name`, `len` bytes, NUL
 * not needed): the first pair with an equal name (ASCII case-insensitive,
 * one trailing dot of the client's name ignored), else the first pair with
 * a wildcard matching exactly one non-empty left-most label; 0 when
 * nothing matches, for an empty name, a name with a NUL byte or longer
 * than 255 bytes (256 with a trailing dot), a NULL table or name. Pure;
 * no allocation. */
size_t ssock__tls_sni_pick(const struct ssock__tls_sni *t, const char *name,
                           size_t len);
/* How messages name pair `pair`'s input `what` ("certificate", "key"):
 * `what` itself for pair 0, "extra_certs[i] what" for pair i + 1. buf
 * returned. */
const char *ssock__tls_pair_what(char *buf, size_t len, size_t pair,
                                 const char *what);

/* Thread-safe strerror (tls.c), for backend messages. */
const char *ssock__tls_errno_text(int e, char *buf, size_t len);

#endif /* SSOCK_TLS_BACKEND_H */
