/*
 * ssock/tls.h — TLS for ssock servers.
 *
 * The conventions of ssock/ssock.h hold here too (0 or a negative code,
 * timeouts in ms, library-owned handles, no printing, no global state, no
 * init call). In addition:
 *
 *  - A TLS configuration (ssock_tls_config) is built once from a
 *    ssock_tls_options, is read-only afterwards, and is shared by every
 *    server opened with it and every socket those servers accept. It is
 *    reference counted (atomically): ssock_tls_config_free() may be called
 *    right after the last ssock_server_open() that uses it; the memory goes
 *    when the last server and socket using it are freed. Building configs,
 *    freeing them and using one config from many threads at once are all
 *    thread-safe.
 *  - Two backends can be built in: mbedTLS (the default; the 3.6 LTS API,
 *    or the older 2.28 LTS) and OpenSSL 3. The backend is chosen per
 *    configuration at run time. Nothing of either library appears in this
 * header; which ones are built is in ssock/features.h and in
 * ssock_tls_backend_available().
 *  - Strict defaults on both backends: TLS 1.2 or newer only;
 *    forward-secret AEAD cipher suites only (ECDHE-ECDSA / ECDHE-RSA with
 *    AES-GCM or CHACHA20-POLY1305, plus the TLS 1.3 suites on OpenSSL and
 *    mbedTLS 3.6; TLS 1.3 with (EC)DHE key exchange only, no 0-RTT);
 *    key exchange groups X25519, P-256, P-384, P-521 (also the curves
 *    accepted for ECDSA client keys on mbedTLS); renegotiation, compression,
 *    session cache and session tickets all off.
 *  - Error detail: the functions that build a configuration write the
 *    backend's own words (mbedTLS error string or OpenSSL error queue, and
 *    the file concerned) to a caller-supplied buffer. Nothing is kept in a
 *    global or thread-local variable of ours.
 *
 * Typical use:
 *
 *     ssock_tls_options t;
 *     ssock_tls_options_init(&t);
 *     t.cert_file = "server.pem";
 *     t.key_file = "server.key";
 *     char err[SSOCK_TLS_ERRBUF_SIZE];
 *     ssock_tls_config *tls;
 *     int rc = ssock_tls_config_new(&tls, &t, err, sizeof err);
 *     if (rc != 0) { fprintf(stderr, "%s: %s\n", ssock_err_name(rc), err); ...
 * }
 *
 *     ssock_server_options o;
 *     ssock_server_options_init(&o);
 *     o.tls = tls;
 *     rc = ssock_server_open(&server, &o);
 *     ssock_tls_config_free(tls);   // the server keeps its own reference
 */
#ifndef SSOCK_TLS_H
#define SSOCK_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "ssock/features.h"
#include "ssock/ssock.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Backends, versions, verification modes                              */
/* ------------------------------------------------------------------ */

/** TLS backend identifiers, for ssock_tls_options.backend. */
typedef enum ssock_tls_backend_id {
    /** mbedTLS when it is built in, else OpenSSL. */
    SSOCK_TLS_BACKEND_DEFAULT = 0,
    /** mbedTLS (3.6 LTS: TLS 1.2 and 1.3; or 2.28 LTS: TLS 1.2 only). */
    SSOCK_TLS_BACKEND_MBEDTLS = 1,
    /** OpenSSL 3 (TLS 1.2 and 1.3). */
    SSOCK_TLS_BACKEND_OPENSSL = 2
} ssock_tls_backend_id;

/** Protocol versions, for ssock_tls_options.min_version (the values are
 * the wire version numbers). Nothing older than TLS 1.2 is offered. */
typedef enum ssock_tls_version {
    SSOCK_TLS_VERSION_1_2 = 0x0303,
    SSOCK_TLS_VERSION_1_3 = 0x0304
} ssock_tls_version;

/** Client certificate verification, for ssock_tls_options.verify_client. */
typedef enum ssock_tls_verify {
    /** No client certificate is requested (the default). */
    SSOCK_TLS_VERIFY_NONE = 0,
    /** A client certificate is requested. A client may send none and the
     * handshake succeeds (ssock_socket_tls_peer_subject() is then NULL),
     * but a certificate that is sent must verify against the CA bundle,
     * or the handshake fails. Needs a CA. */
    SSOCK_TLS_VERIFY_OPTIONAL = 1,
    /** A client certificate is required and must verify against the CA
     * bundle, or the handshake fails. Needs a CA.
     *
     * With _OPTIONAL and _REQUIRED, both backends also refuse a client
     * certificate whose keyUsage extension, when present, lacks
     * digitalSignature, or whose extendedKeyUsage extension, when present,
     * does not list clientAuth (anyExtendedKeyUsage alone is not enough). */
    SSOCK_TLS_VERIFY_REQUIRED = 2
} ssock_tls_verify;

/** Default handshake deadline per connection, ms. */
#define SSOCK_TLS_DEFAULT_HANDSHAKE_TIMEOUT_MS 10000
/** Default cap on handshakes in flight per server. */
#define SSOCK_TLS_DEFAULT_MAX_HANDSHAKES 256
/** Largest accepted ssock_tls_options.max_handshakes (a larger value is
 * SSOCK_ETLSCONFIG). The pending set grows with use up to the cap; it is
 * not allocated at its full size up front. */
#define SSOCK_TLS_MAX_HANDSHAKES_LIMIT 65536
/** Default cap on handshakes in flight per source address (see
 * ssock_tls_options.max_handshakes_per_source). */
#define SSOCK_TLS_DEFAULT_MAX_HANDSHAKES_PER_SOURCE 64
/** Default IPv6 prefix length that makes one source (see
 * ssock_tls_options.source_prefix_v6). */
#define SSOCK_TLS_DEFAULT_SOURCE_PREFIX_V6 64
/** An error buffer of this size holds any message the library writes
 * (longer messages, e.g. with long file names, are truncated, always
 * NUL-terminated). */
#define SSOCK_TLS_ERRBUF_SIZE 512

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

/**
 * Key-log callback (ssock_tls_options.keylog): receives one line of the NSS
 * key log format, the format Wireshark reads ("CLIENT_RANDOM <client random>
 * <master secret>" for TLS 1.2; "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
 * "SERVER_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0",
 * "SERVER_TRAFFIC_SECRET_0" (and, on OpenSSL, "EXPORTER_SECRET") lines for
 * TLS 1.3; values in lower-case hex), without a newline. `line` is valid
 * only during the call. Called from the thread running the handshake (the
 * thread in ssock_server_accept()). Anyone holding these lines can decrypt
 * the session: for debugging only.
 */
typedef void (*ssock_tls_keylog_fn)(const char *line, void *arg);

/**
 * What the verify hook (ssock_tls_options.verify_peer) is shown: the client
 * certificate chain as the client sent it, leaf first, as DER, and the
 * leaf's subject in the format of ssock_socket_tls_peer_subject(). Filled
 * by the library; everything is valid only during the call. `struct_size`
 * is the size of the struct the library filled: a later library may
 * append fields, read them only when struct_size covers them.
 */
typedef struct ssock_tls_peer {
    size_t struct_size;
    /** Number of certificates (>= 1). */
    size_t count;
    /** der[i] / der_len[i]: certificate i, 0 = the client's leaf. */
    const unsigned char *const *der;
    const size_t *der_len;
    /** Subject of der[0], e.g. "O=ssock, CN=client" (NULL if it could not
     * be formatted). */
    const char *subject;
} ssock_tls_peer;

/**
 * Verify hook (ssock_tls_options.verify_peer): called during the
 * handshake, from the accepting thread, only for a client certificate that
 * the backend has already verified (chain to the CA, dates, key usage).
 * Return 0 to accept it; any other value rejects it: the handshake fails
 * (the client gets a bad_certificate alert on OpenSSL, access_denied on
 * mbedTLS; on TLS 1.3 a client has usually finished its side already and
 * sees the alert on its first read, and mbedTLS 3.6 sends it under keys
 * the client has left, so the client reports a bad record MAC, as for
 * any client certificate mbedTLS 3.6 refuses), it is counted in
 * ssock_tls_stats.handshakes_failed, and the
 * server's event callback and ssock_server_tls_last_error() say "rejected
 * by verify_peer". It must not call into the server that runs the
 * handshake.
 */
typedef int (*ssock_tls_verify_fn)(const ssock_tls_peer *peer, void *arg);

/** Largest accepted ssock_tls_options.extra_cert_count (a larger value is
 * SSOCK_ETLSCONFIG): at most 1 + 64 certificate/key pairs per
 * configuration. */
#define SSOCK_TLS_MAX_EXTRA_CERTS 64

/**
 * One certificate chain (leaf first) and the private key of its leaf, for
 * SNI selection (ssock_tls_options.extra_certs). Each of the two comes
 * either from a file (`*_file`) or from memory (`*_mem` + `*_len`), never
 * both, with the same formats and rules as cert_* / key_* in
 * ssock_tls_options. Nothing it points to needs to outlive
 * ssock_tls_config_new().
 */
typedef struct ssock_tls_cert {
    const char *cert_file;
    const void *cert_mem;
    size_t cert_len;
    const char *key_file;
    const void *key_mem;
    size_t key_len;
} ssock_tls_cert;

/**
 * Everything a TLS configuration is built from. Always fill it with
 * ssock_tls_options_init() first, then change fields. The init macro
 * passes the size of the struct the program was compiled with (the scheme
 * of ssock_server_options): a program built against an older header keeps
 * working with a newer library, which uses defaults for the fields the
 * program does not have, and a program built against a newer header gets
 * SSOCK_ENOTSUP from ssock_tls_config_new() when it sets a field this
 * library does not know. Every field is safe at zero except those the
 * init function sets. Nothing it points to needs to outlive
 * ssock_tls_config_new(): files are read and memory is copied during the
 * call (the callbacks and their arguments are kept, and must stay valid
 * while the configuration is in use).
 *
 * Each of the certificate chain, the private key and the CA bundle comes
 * either from a file (`*_file`, a path) or from memory (`*_mem` +
 * `*_len`), never both. File or memory, the content may be PEM (recognised
 * by a "-----BEGIN" line; the length need not count a terminating NUL) or
 * DER (one or more concatenated DER certificates; a PKCS#8, SEC1 or PKCS#1
 * key). Encrypted private keys are not supported.
 */
typedef struct ssock_tls_options {
    /** Set by ssock_tls_options_init(); do not change. */
    size_t struct_size;

    /** SSOCK_TLS_BACKEND_DEFAULT (mbedTLS if built), _MBEDTLS or _OPENSSL. */
    int backend;

    /** Server certificate chain, leaf first (required, file or memory). */
    const char *cert_file;
    const void *cert_mem;
    size_t cert_len;

    /** Private key matching the leaf certificate (required). */
    const char *key_file;
    const void *key_mem;
    size_t key_len;

    /** CA certificates that client certificates must chain to (optional;
     * needed by SSOCK_TLS_VERIFY_OPTIONAL and _REQUIRED; its subjects are
     * sent to clients as the acceptable CA list). */
    const char *ca_file;
    const void *ca_mem;
    size_t ca_len;

    /** ssock_tls_verify value; default SSOCK_TLS_VERIFY_NONE. */
    int verify_client;

    /** ssock_tls_version value; default SSOCK_TLS_VERSION_1_2. The highest
     * version offered is the backend's highest (TLS 1.3 on OpenSSL and
     * mbedTLS 3.6, 1.2 on mbedTLS 2.28). Asking mbedTLS 2.28 for 1.3 fails
     * with SSOCK_EVERSION; it is never silently lowered. */
    int min_version;

    /** ALPN protocols the server accepts, most preferred first (the server's
     * order decides), e.g. {"h2", "http/1.1"}; each 1..255 bytes. NULL /
     * 0: no ALPN. When a client offers ALPN and none of its protocols is in
     * this list, the handshake fails (no_application_protocol alert); a
     * client that offers no ALPN is accepted and gets none. */
    const char *const *alpn;
    size_t alpn_count;

    /** Total time a connection may spend in its handshake, ms, > 0 (one
     * deadline from accept, not reset by each byte). Default
     * SSOCK_TLS_DEFAULT_HANDSHAKE_TIMEOUT_MS. */
    int handshake_timeout_ms;

    /** Handshakes a server keeps in flight at once, 1 ..
     * SSOCK_TLS_MAX_HANDSHAKES_LIMIT; when full, the oldest is dropped.
     * Default SSOCK_TLS_DEFAULT_MAX_HANDSHAKES. */
    int max_handshakes;

    /** 0 (default): a certificate in the server's own chain that is expired
     * or not yet valid (against the system clock when the configuration is
     * built) is an error, SSOCK_ECERTTIME. Non-zero: it is accepted and a
     * warning is left in ssock_tls_config_message() (clients will normally
     * reject it; for tests and clock-less devices). This flag does not
     * relax the checks on client certificates. */
    int allow_expired_cert;

    /** Handshakes one source address may have in flight at once, >= 0;
     * 0 (the default) means SSOCK_TLS_DEFAULT_MAX_HANDSHAKES_PER_SOURCE.
     * A source is an IPv4 address (/32; IPv4-mapped IPv6 counts as IPv4)
     * or an IPv6 prefix of source_prefix_v6 bits. When a new connection's
     * source already has this many handshakes pending, that source's own
     * oldest pending handshake is dropped to make room; handshakes of other
     * sources are never evicted for it (counted in
     * ssock_tls_stats.handshakes_source_limited). Values above
     * max_handshakes behave as max_handshakes. Negative:
     * SSOCK_ETLSCONFIG. */
    int max_handshakes_per_source;

    /** Length in bits of the IPv6 prefix that makes one source for
     * max_handshakes_per_source, 1..128; 0 (the default) means
     * SSOCK_TLS_DEFAULT_SOURCE_PREFIX_V6 (64: one customer network). Outside
     * 0..128: SSOCK_ETLSCONFIG. */
    int source_prefix_v6;

    /* ---- since 0.2 ---- */

    /** Optional key-log callback (see ssock_tls_keylog_fn) and its
     * argument; NULL (the default): no key is ever exported. There is no
     * environment variable (SSLKEYLOGFILE is ignored): only this explicit
     * option turns it on. Both backends, TLS 1.2 and 1.3. */
    ssock_tls_keylog_fn keylog;
    void *keylog_arg;

    /** Optional verify hook (see ssock_tls_verify_fn) and its argument,
     * for a client certificate; used only with SSOCK_TLS_VERIFY_OPTIONAL
     * or _REQUIRED (a client that sends no certificate under _OPTIONAL
     * does not reach it; with _NONE it is never called, and
     * ssock_tls_config_message() says so). NULL (the default): the
     * backend's verification alone decides. */
    ssock_tls_verify_fn verify_peer;
    void *verify_peer_arg;

    /* ---- since 0.3 ---- */

    /** More certificate/key pairs, for SNI (server name indication): an
     * array of extra_cert_count pairs, in order after the pair of
     * cert_* / key_* (pair 0). NULL / 0 (the default): one pair, which
     * every client gets. Each pair is loaded and checked like pair 0
     * (parse, key match, dates, key size); a failure names it, e.g.
     * "extra_certs[1] certificate 'b.pem': ...". NULL with a count > 0, or
     * a count above SSOCK_TLS_MAX_EXTRA_CERTS: SSOCK_ETLSCONFIG. Like
     * everything here, read during ssock_tls_config_new() only. A pair
     * none of whose names can ever match leaves a warning in
     * ssock_tls_config_message().
     *
     * Selection, the same on both backends, TLS 1.2 and 1.3: a
     * certificate's names are its subjectAltName DNS names, or its
     * subject's (last) commonName when it has no DNS name in a
     * subjectAltName. The name the client sends (ASCII case-insensitive;
     * one trailing dot ignored; IDNA names compared as their "xn--" form)
     * picks the first pair with a name equal to it, else the first pair
     * with a wildcard name matching it. A wildcard is "*" as the whole
     * left-most label, followed by at least two labels, and stands for
     * exactly one non-empty label: "*.example.com" matches
     * "a.example.com", not "a.b.example.com", "example.com" or
     * ".example.com"; a "*" anywhere else never matches. No name, or a name
     * that matches nothing, gets pair 0: a name never fails a handshake
     * (but one with a NUL byte or longer than 255 bytes is refused by both
     * backends, as before). The pair chosen is served as it is, RSA or
     * ECDSA: a client that cannot use its key type fails the handshake
     * (there is no fallback to another pair). ssock_socket_tls_sni()
     * gives the name the client sent. */
    const ssock_tls_cert *extra_certs;
    size_t extra_cert_count;
} ssock_tls_options;

/** Fill `opts` with the defaults: default backend, no certificate, key or
 * CA, SSOCK_TLS_VERIFY_NONE, SSOCK_TLS_VERSION_1_2, no ALPN, default
 * handshake timeout and cap, allow_expired_cert 0, per-source cap and IPv6
 * source prefix 0 (their defaults), no key-log callback, no verify hook,
 * no extra certificates (extra_certs NULL, extra_cert_count 0).
 * No-op on NULL. Use the macro; the function takes the size of the
 * caller's struct and fills only that much. */
SSOCK_API void ssock_tls_options_init_sized(ssock_tls_options *opts,
                                            size_t size);
#define ssock_tls_options_init(opts)                                           \
    ssock_tls_options_init_sized((opts), sizeof(ssock_tls_options))

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

/** A built, immutable TLS server configuration. Opaque. */
typedef struct ssock_tls_config ssock_tls_config;

/**
 * Build a TLS configuration: read and parse the certificate chain, key and
 * CA, check that the key matches the leaf certificate and that every
 * certificate of the chain is within its validity dates, and prepare the
 * backend.
 *
 * Checks run in this order: arguments (backend, timeout, cap, version,
 * verification mode, sources, ALPN), then files are read, then the backend
 * checks its own limits (version) and parses and checks the contents. The
 * first failure is returned.
 *
 * @param out    receives the configuration (reference count 1), or NULL
 *               whenever the result is not 0.
 * @param opts   options (see ssock_tls_options); not retained.
 * @param errbuf optional (may be NULL); on failure receives a one-line
 *               explanation naming the input concerned and carrying the
 *               backend's own message (e.g. "certificate 'x.pem': X509 -
 *               The CRT/CRL/CSR has an invalid format ... (-0x2180)", or
 *               "cannot read key file 'y.key': No such file or directory");
 *               on success receives the warnings (as
 *               ssock_tls_config_message()) or "". Always NUL-terminated
 *               when errlen > 0; SSOCK_TLS_ERRBUF_SIZE is enough.
 * @param errlen size of errbuf.
 * @return 0;
 *         SSOCK_EINVAL (NULL `out` or `opts`, or `opts` not filled by
 *           ssock_tls_options_init(): struct_size smaller than the 0.2
 *           layout up to source_prefix_v6);
 *         SSOCK_ENOTSUP (`opts` comes from a newer header and sets a field
 *           this library does not know);
 *         SSOCK_ENOBACKEND (unknown backend id, or a backend not built in);
 *         SSOCK_EBADTIMEOUT (handshake_timeout_ms <= 0);
 *         SSOCK_ETLSCONFIG (max_handshakes <= 0 or above
 *           SSOCK_TLS_MAX_HANDSHAKES_LIMIT; max_handshakes_per_source < 0;
 *           source_prefix_v6 outside 0..128; unknown verify_client or
 *           min_version value; certificate or key missing, or given both as
 *           file and memory; memory pointer NULL or length 0; verification
 *           asked without a CA; ALPN entry NULL, empty or longer than 255
 *           bytes, or alpn NULL with alpn_count > 0; extra_certs NULL
 *           with extra_cert_count > 0, or extra_cert_count above
 *           SSOCK_TLS_MAX_EXTRA_CERTS; a certificate the backend refuses to
 *           use, e.g. a key too weak for its security level);
 *         SSOCK_EVERSION (min_version the backend does not have: TLS 1.3 on
 *           mbedTLS 2.28);
 *         SSOCK_EFILE (a file cannot be opened or read, is not a regular
 *           file (a FIFO, device, socket or directory is refused at once,
 *           without blocking: files are opened with O_NONBLOCK and checked
 *           with fstat() before anything is read), or is larger than
 *           16 MiB; errno text in errbuf);
 *         SSOCK_ECERTPARSE (a certificate, key or CA cannot be parsed, or
 *           holds no certificate; encrypted key);
 *         SSOCK_EKEYMISMATCH (the key does not belong to the leaf
 *           certificate);
 *         SSOCK_ECERTTIME (a chain certificate is expired or not yet valid
 *           and allow_expired_cert is 0);
 *         SSOCK_ENOMEM.
 * Blocks only to read files. Thread-safe.
 */
SSOCK_API SSOCK_NODISCARD int
ssock_tls_config_new(ssock_tls_config **out, const ssock_tls_options *opts,
                     char *errbuf, size_t errlen);

/**
 * Warnings left by a successful ssock_tls_config_new() (for example
 * "certificate 'expired.pem' expired on 2001-01-01 (accepted:
 * allow_expired_cert)", or a CA that is unused because verify_client is
 * none), one per line; "" when there are none. NULL for a NULL config.
 * Valid as long as the caller holds its reference.
 */
SSOCK_API const char *ssock_tls_config_message(const ssock_tls_config *cfg);

/** The backend the configuration uses (SSOCK_TLS_BACKEND_MBEDTLS or
 * _OPENSSL, never _DEFAULT), or SSOCK_EINVAL for NULL. */
SSOCK_API int ssock_tls_config_backend(const ssock_tls_config *cfg);

/**
 * Drop the caller's reference. Servers and sockets still using the
 * configuration keep it alive; the last one to go frees it. No-op on NULL.
 * Thread-safe; the caller must not use `cfg` afterwards.
 */
SSOCK_API void ssock_tls_config_free(ssock_tls_config *cfg);

/** 1 if `backend` (a ssock_tls_backend_id; _DEFAULT means "any") is built
 * into this library, else 0. */
SSOCK_API int ssock_tls_backend_available(int backend);

/**
 * Name of a backend: "mbedtls" or "openssl" (whether built in or not);
 * for SSOCK_TLS_BACKEND_DEFAULT the name of the backend it stands for in
 * this build ("mbedtls", or "openssl" when mbedTLS is not built in, or
 * "none"); NULL for an unknown id. Static strings.
 */
SSOCK_API const char *ssock_tls_backend_name(int backend);

/** Backend id for a name ("mbedtls", "openssl" or "default", case-
 * insensitive), whether built in or not; SSOCK_ENOBACKEND for any other
 * name, SSOCK_EINVAL for NULL. For command lines such as --backend. */
SSOCK_API int ssock_tls_backend_from_name(const char *name);

/* ------------------------------------------------------------------ */
/* TLS servers                                                         */
/* ------------------------------------------------------------------ */

/*
 * A server is made a TLS server by setting `ssock_server_options.tls` to a
 * configuration before ssock_server_open() (NULL, the default, gives a
 * plain server). The server takes its own reference to the configuration,
 * and each socket it accepts takes one too. Then:
 *
 *  - ssock_server_accept() returns only sockets whose handshake has
 *    finished. It waits at most the accept timeout, handshake time
 *    included. Handshakes run non-blocking and concurrently inside the
 *    accepting thread (one poll() over the listening socket, the wake
 *    descriptor and every pending handshake); the first one to finish is
 *    returned, so silent, slow or malicious clients do not delay others.
 *  - A handshake still pending when accept's timeout ends is kept for the
 *    next call. Each one ends at its own deadline, handshake_timeout_ms
 *    after the connection was taken (one total deadline). When
 *    max_handshakes are in flight, the oldest is dropped to make room.
 *    When the new connection's source already has max_handshakes_per_source
 *    in flight, that source's own oldest is dropped instead (other sources
 *    are never evicted for it). accept() returns within its timeout plus
 *    at most one handshake step, even under a burst of ClientHellos: each
 *    backend call (handshake step or read) has a budget of transport reads
 *    after which it returns to the loop, so floods of alerts, empty
 *    records or ChangeCipherSpec cannot hold it. A close from another
 *    thread during a handshake step makes accept() return SSOCK_ECLOSED.
 *  - Failed handshakes (not TLS, malformed or truncated ClientHello,
 *    version or cipher mismatch, client certificate missing or rejected,
 *    unknown ALPN, peer closed) are closed and counted, never returned, and
 *    never end accept() early.
 *  - ssock_server_close() from another thread wakes the acceptor and frees
 *    every pending handshake.
 *  - Accepted TLS sockets keep the whole ssock_socket API and its
 *    semantics (timeouts, SSOCK_ESERVERCLOSED, wake on close).
 *    The backend's WANT_READ / WANT_WRITE are handled inside, under the
 *    same timeouts; a TLS protocol failure is SSOCK_ETLS, with the
 *    backend's text in ssock_socket_tls_last_error().
 *  - End of stream, on both backends: ssock_socket_read() returns SSOCK_EOF
 *    only when the peer ended the stream properly, with a close_notify
 *    alert. When the transport ends without one (a TCP FIN or a peer that
 *    vanished), read returns SSOCK_ETRUNCATED instead: the data received so
 *    far is authentic, but an attacker (or a crashed peer) may have cut the
 *    stream short, so a protocol without its own length or end marker must
 *    not treat it as complete. Both are sticky: every later read returns
 *    the same code. (OpenSSL's SSL_R_UNEXPECTED_EOF_WHILE_READING, which
 *    SSL_OP_IGNORE_UNEXPECTED_EOF is not set to hide, and mbedTLS's
 *    transport EOF without close_notify, both become SSOCK_ETRUNCATED.)
 *    A handshake cut short is a failed handshake (status SSOCK_EOF in its
 *    event). Writes never raise
 *    SIGPIPE (the backends write through the library's send with
 *    MSG_NOSIGNAL).
 *  - Decrypted bytes may wait inside the TLS session, where poll() on
 *    ssock_socket_fd() cannot see them: ssock_socket_pending() tells how
 *    many can be read without touching the descriptor. Check it before
 *    polling the descriptor yourself.
 *  - A TLS write that fails part way (SSOCK_ETIMEOUT or another error while
 *    the backend still holds part of an encrypted record) leaves the
 *    stream unusable for writing: every later write returns SSOCK_EBROKEN
 *    (reads keep working). Close the socket. There is never silent
 *    corruption of the byte stream.
 *  - ssock_socket_shutdown_write() sends close_notify first, then shuts
 *    down the sending side of the connection.
 *  - Closing sends close_notify, best effort, bounded by
 *    min(write timeout, 1000 ms) (1000 ms also when the write timeout is
 *    SSOCK_WAIT_FOREVER), and always frees everything; close and free
 *    return promptly.
 */

/** Handshake counters of a TLS server (since it was opened). Fields are
 * only ever appended; ssock_server_tls_stats() fills the size the program
 * was compiled with. */
typedef struct ssock_tls_stats {
    /** TCP connections taken from the listening socket. */
    uint64_t accepted;
    /** Handshakes finished (sockets handed out or about to be). */
    uint64_t handshakes_ok;
    /** Handshakes that failed (protocol error, rejected certificate, peer
     * closed, I/O error). */
    uint64_t handshakes_failed;
    /** Handshakes ended by their handshake deadline. */
    uint64_t handshakes_timed_out;
    /** Handshakes dropped because max_handshakes were in flight, or freed
     * by server close. */
    uint64_t handshakes_dropped;
    /** Handshakes pending right now. */
    uint64_t in_flight;
    /** Handshakes dropped because their source already had
     * max_handshakes_per_source in flight (each is also counted in
     * handshakes_dropped). */
    uint64_t handshakes_source_limited;
} ssock_tls_stats;

/**
 * Read a TLS server's counters. Use the macro: the function zeroes and
 * fills only the first `size` bytes of `stats` (the size of the struct the
 * program was compiled with; a library with more counters leaves them
 * out, an older one leaves the caller's extra counters at 0).
 * @return 0; SSOCK_EINVAL (NULL argument, or size 0); SSOCK_ENOTTLS (a
 *         plain server; `stats` is zeroed).
 * Safe from any thread while the server handle is alive; each counter is
 * read atomically, the set is not one snapshot. Still answers after close.
 */
SSOCK_API int ssock_server_tls_stats_sized(const ssock_server *server,
                                           ssock_tls_stats *stats, size_t size);
#define ssock_server_tls_stats(server, stats)                                  \
    ssock_server_tls_stats_sized((server), (stats), sizeof(ssock_tls_stats))

/**
 * Certificate rotation without restart: make `config` the TLS
 * configuration of a running TLS server (the server takes its own
 * reference; the caller may free its handle right after). Safe from any
 * thread, also while another thread accepts. Connections accepted after
 * the call handshake with the new configuration; handshakes already in
 * flight finish on the one they started with, and sockets keep theirs;
 * the old configuration is freed when its last user is gone. The swap is
 * one atomic exchange: nothing on the handshake path locks, and no
 * handshake fails because of it. The handshake timeout and limits of the
 * new configuration apply to connections accepted after the swap.
 * @return 0; SSOCK_EINVAL (NULL argument); SSOCK_ENOTTLS (a plain
 *         server); SSOCK_ECLOSED (the server is closed or drained).
 */
SSOCK_API int ssock_server_set_tls(ssock_server *server,
                                   const ssock_tls_config *config);

/**
 * Text of the backend's error for the most recent failed handshake on this
 * server (e.g. "SSL - No client certification received from the client,
 * but required by the authentication mode"), "" when none failed yet, NULL
 * for a NULL or plain server. Valid until the next call to
 * ssock_server_accept() or ssock_server_free(); call it from the accepting
 * thread.
 */
SSOCK_API const char *ssock_server_tls_last_error(const ssock_server *server);

/* ------------------------------------------------------------------ */
/* TLS sockets                                                         */
/* ------------------------------------------------------------------ */

/*
 * These describe the session of a socket accepted from a TLS server. The
 * facts (version, cipher, group, ALPN, SNI, client subject and certificate
 * chain) are copied once, when the handshake finishes, and never change;
 * the getters read only that copy, never the live session. So they are
 * safe from any thread at any time while the handle is alive (not yet
 * freed), also during or after a close from another thread. Each string
 * or DER buffer is owned by the socket and valid until
 * ssock_socket_free(), also after close; NULL when `sock` is NULL, is not
 * a TLS socket, or the item is not present.
 */

/**
 * All the facts of a TLS session in one struct (ssock_socket_tls_info()).
 * Fields are only ever appended; struct_size says how much the library
 * filled.
 */
typedef struct ssock_tls_info {
    /** Set by the library: the bytes it filled. */
    size_t struct_size;
    /** As ssock_socket_tls_version(), _cipher(). */
    const char *version;
    const char *cipher;
    /** Key-exchange group, IANA name in lower case: "x25519",
     * "secp256r1", "secp384r1" or "secp521r1" (the groups ssock offers),
     * both backends, TLS 1.2 and 1.3. NULL if unknown. */
    const char *group;
    /** As ssock_socket_tls_alpn(), _sni(), _peer_subject(). */
    const char *alpn;
    const char *sni;
    const char *peer_subject;
    /** 1 for a resumed session. Always 0 today: session tickets and the
     * session cache are off on both backends, so nothing is resumed. */
    int resumed;
} ssock_tls_info;

/**
 * Fill `info` with the session's facts (see ssock_tls_info). Use the
 * macro; the function zeroes and fills only the first `size` bytes. The
 * strings are owned by the socket, valid until ssock_socket_free().
 * @return 0; SSOCK_EINVAL (NULL argument, or size smaller than
 *         struct_size); SSOCK_ENOTTLS (a plain socket; `info` is zeroed
 *         but for struct_size).
 * Safe from any thread while the handle is alive; never blocks.
 */
SSOCK_API int ssock_socket_tls_info_sized(const ssock_socket *sock,
                                          ssock_tls_info *info, size_t size);
#define ssock_socket_tls_info(sock, info)                                      \
    ssock_socket_tls_info_sized((sock), (info), sizeof(ssock_tls_info))

/**
 * Number of certificates in the client's chain as it sent it (leaf first),
 * kept only when a client certificate was sent and verified (mutual TLS;
 * the CA itself counts only if the client sent it). 0 when there is none,
 * for a plain socket and for NULL. Safe from any thread while the handle
 * is alive.
 */
SSOCK_API size_t ssock_socket_tls_peer_cert_count(const ssock_socket *sock);

/**
 * Certificate `index` of the client's chain as DER (0 = the client's leaf),
 * captured at the end of the handshake: *der points into the socket (valid
 * until ssock_socket_free()), *len is its length. Lets access checks
 * compare the exact certificate or its key instead of a backend's subject
 * text.
 * @return 0; SSOCK_EINVAL (NULL argument, or index >= the count: *der and
 *         *len are then NULL and 0); SSOCK_ENOTTLS (a plain socket).
 * Safe from any thread while the handle is alive.
 */
SSOCK_API int ssock_socket_tls_peer_cert(const ssock_socket *sock, size_t index,
                                         const unsigned char **der,
                                         size_t *len);

/** Negotiated protocol version: "TLSv1.2" or "TLSv1.3". */
SSOCK_API const char *ssock_socket_tls_version(const ssock_socket *sock);

/** Negotiated cipher suite, IANA name with both backends, e.g.
 * "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" or "TLS_AES_128_GCM_SHA256".
 * Which one is chosen: the server's order on OpenSSL; on mbedTLS the
 * server's order for TLS 1.2 and the client's for TLS 1.3. */
SSOCK_API const char *ssock_socket_tls_cipher(const ssock_socket *sock);

/** ALPN protocol selected, e.g. "h2"; NULL when none was negotiated. */
SSOCK_API const char *ssock_socket_tls_alpn(const ssock_socket *sock);

/** Host name the client asked for with SNI, as it sent it (case and any
 * trailing dot kept); NULL when it sent none. The certificate the server
 * presented was chosen from it (see ssock_tls_options.extra_certs): pair 0
 * when the name matched no other pair, or when there is only pair 0. */
SSOCK_API const char *ssock_socket_tls_sni(const ssock_socket *sock);

/**
 * Subject of the client certificate, present only when one was sent and
 * verified (mutual TLS), whole however long, as "O=ssock, CN=client" in
 * certificate order,
 * ", " between attributes. Escaping of unusual characters follows the
 * backend (RFC 2253 style on OpenSSL). NULL when no verified certificate.
 */
SSOCK_API const char *ssock_socket_tls_peer_subject(const ssock_socket *sock);

/** Backend text of the last TLS failure on this socket ("" if none), NULL
 * when `sock` is NULL or not a TLS socket. Valid until the next call on the
 * socket (after close: until ssock_socket_free()); call it from the thread
 * that owns the socket (it is written by that thread's reads and writes).
 * The name matches the "last error" family (ssock_server_tls_last_error(),
 * ssock_socket_last_os_error()). */
SSOCK_API const char *ssock_socket_tls_last_error(const ssock_socket *sock);

/** The same as ssock_socket_tls_last_error() (the 0.1 name; goes in the
 * next minor version before 1.0, see README "API and ABI stability"). */
SSOCK_API SSOCK_DEPRECATED("0.2", "use ssock_socket_tls_last_error()") const
    char *ssock_socket_tls_error(const ssock_socket *sock);

#ifdef __cplusplus
}
#endif

#endif /* SSOCK_TLS_H */
