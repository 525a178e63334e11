/*
 * tls_mbedtls.c — the mbedTLS backend, for the 2.28 LTS API (Debian 12's
 * system library: TLS 1.2 only) and the 3.6 LTS API (`make deps`, Debian 13:
 * TLS 1.2 and 1.3). The spots that differ are behind MBEDTLS_VERSION_MAJOR
 * / MB_HAVE_TLS13 checks; the test suite runs against both.
 *
 * mbedTLS 3.6 specifics:
 *  - PSA: TLS 1.3 and MBEDTLS_USE_PSA_CRYPTO need psa_crypto_init(), whose
 *    state is process-global inside mbedTLS. config_new calls it every
 *    time: in 3.6 it returns at once when already done, and each of its
 *    steps runs under mbedTLS's own global mutex when MBEDTLS_THREADING_C
 *    is on (library/psa_crypto.c, mbedtls_psa_crypto_init_subsystem), so
 *    concurrent config_new calls are safe. It is never undone
 *    (mbedtls_psa_crypto_free() would pull PSA from under other users of
 *    mbedTLS in the process); that global is mbedTLS's, not ours.
 *  - TLS 1.3 runs with ephemeral (EC)DHE key exchange only: no PSK, no
 *    session tickets (no ticket callbacks are installed, so no
 *    NewSessionTicket is sent, and no resumption), no 0-RTT (early data is
 *    off unless MBEDTLS_SSL_EARLY_DATA is built and enabled, which we
 *    never do); renegotiation and compression do not exist in 1.3 and are
 *    off in 1.2.
 *  - mbedTLS 3.6 does not implement TLS 1.3 KeyUpdate: a peer that sends
 *    one gets the connection failed; read() reports SSOCK_ETLS with a
 *    message saying so.
 *
 * Threads: the mbedtls_ssl_config, certificates, key and the CTR-DRBG are
 * per configuration and shared by every session. That is safe only when
 * mbedTLS is built with MBEDTLS_THREADING_C (the DRBG and RSA blinding then
 * take their own mutexes) — Debian's 2.28 is (THREADING_C +
 * THREADING_PTHREAD, checked both in the headers and, through
 * mbedtls_version_check_feature(), in the library actually loaded). When
 * either says no, the configuration uses a stateless getrandom() RNG
 * instead of the shared DRBG; RSA keys would still not be safe to share
 * across threads there, so use one thread per configuration.
 *
 * Memory: every session holds mbedTLS's two record buffers for its whole
 * life (MBEDTLS_SSL_IN_CONTENT_LEN / OUT_CONTENT_LEN, 16 KiB each in
 * Debian's build, which lacks MBEDTLS_SSL_VARIABLE_BUFFER_LENGTH); measured
 * about 36 KiB of heap per idle session after the handshake (the handshake
 * structures are freed when it ends).
 */
#include "tls_backend.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/version.h>
#if MBEDTLS_VERSION_MAJOR >= 3
#include <mbedtls/build_info.h>
#else
#include <mbedtls/config.h>
#endif
#include <mbedtls/asn1.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <sys/random.h>

#if MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
#define MB_HAVE_TLS13 1
#else
#define MB_HAVE_TLS13 0
#endif

#if MBEDTLS_VERSION_MAJOR >= 3 &&                                              \
    (MB_HAVE_TLS13 || defined(MBEDTLS_USE_PSA_CRYPTO))
/* mbedTLS 3.x needs PSA initialised for TLS 1.3 / USE_PSA_CRYPTO
 * (idempotent and thread-safe in 3.6: see the top of this file). */
#include <psa/crypto.h>
#define MB_NEED_PSA 1
#else
#define MB_NEED_PSA 0
#endif

/* An extra certificate/key pair (SNI, ssock_tls_options.extra_certs). */
struct mb_pair {
    mbedtls_x509_crt chain;
    mbedtls_pk_context key;
};

struct mb_cfg {
    mbedtls_ssl_config conf;
    mbedtls_x509_crt chain; /* pair 0 */
    mbedtls_pk_context key;
    struct mb_pair *extra; /* pairs 1..nextra, for SNI */
    size_t nextra;
    struct ssock__tls_sni sni; /* names of every pair (when nextra > 0) */
    mbedtls_x509_crt ca;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    char **alpn; /* NULL-terminated copy, as mbedtls_ssl_conf_alpn_protocols
                    wants; lives as long as conf */
    int verify;
    int shared_drbg; /* mbedTLS locks the DRBG: sessions may share it */
    ssock_tls_keylog_fn keylog; /* NULL: off */
    void *keylog_arg;
    ssock_tls_verify_fn verify_peer; /* NULL: off */
    void *verify_peer_arg;
};

/*
 * The key-exchange group, read from our own outgoing handshake: mbedTLS has
 * no public getter for it (2.28 and 3.6), and the handshake structures are
 * freed when the handshake ends. The group is in the clear in what the
 * server sends: the ServerKeyExchange's named_curve (TLS 1.2) or the
 * ServerHello's key_share (TLS 1.3; in a HelloRetryRequest the selected
 * group, the same one). Bytes are looked at as they are sent, record by
 * record and message by message, until the group is found or the
 * encrypted part begins.
 */
struct mb_sniff {
    int done;
    unsigned char rec_hdr[5];
    size_t rec_got, rec_left;
    unsigned char msg_hdr[4];
    size_t msg_hdr_got, msg_left, msg_got;
    unsigned char msg[512]; /* start of a ServerHello / ServerKeyExchange */
    unsigned group;         /* IANA id, 0 = unknown */
};

struct mb_sess {
    /* First member: callbacks that get the mbedtls_ssl_context (SNI) find
     * the session by converting the pointer back. */
    mbedtls_ssl_context ssl;
    struct mb_cfg *cfg;
    struct ssock__tls_io io;
    int io_errno;      /* errno of the last failed io call, 0 if none */
    int eof;           /* io recv returned 0 */
    int hs_done;       /* handshake finished */
    int empty_records; /* the last records read were empty */
    size_t wlen;       /* len of a write that returned WANT_*, else 0 */
    uint32_t vflags;   /* verification flags seen on the client chain */
    int hook_rejected; /* verify_peer refused the client certificate */
    struct mb_sniff sniff;
    char *sni;
    char *subject;
    size_t peer_count; /* verified client chain (pointers into the
                          session's peer certificate), leaf first */
    const unsigned char **peer_der;
    size_t *peer_len;
    int info_ready;
    char cipher[96];
    char err[256];
};

/* Forward-secret AEAD suites only, in preference order. */
static const int mb_suites[] = {
#if MB_HAVE_TLS13
    MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
    MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
    MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
#endif
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0};

/* Key exchange groups (also the curves accepted on client ECDSA keys). */
#if MBEDTLS_VERSION_NUMBER >= 0x03010000
static const uint16_t mb_groups[] = {
    MBEDTLS_SSL_IANA_TLS_GROUP_X25519, MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1, MBEDTLS_SSL_IANA_TLS_GROUP_SECP521R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_NONE};
#else
static const mbedtls_ecp_group_id mb_curves[] = {
    MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1,
    MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_SECP521R1, MBEDTLS_ECP_DP_NONE};
#endif

static void mb_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void mb_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Append a line to a warning buffer. */
static void mb_warn(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void mb_warn(char *err, size_t errlen, const char *fmt, ...)
{
    size_t used = strlen(err);
    va_list ap;

    if (used > 0 && used + 1 < errlen) {
        err[used++] = '\n';
        err[used] = '\0';
    }
    if (used + 1 >= errlen)
        return;
    va_start(ap, fmt);
    (void)vsnprintf(err + used, errlen - used, fmt, ap);
    va_end(ap);
}

/* "<mbedTLS text> (-0xNNNN)" */
static const char *mb_strerror(int ret, char *buf, size_t len)
{
    char tmp[160];

    mbedtls_strerror(ret, tmp, sizeof tmp);
    (void)snprintf(buf, len, "%s (-0x%04x)", tmp, (unsigned)-ret);
    return buf;
}

static const char *label(const char *file)
{
    return file != NULL ? file : "(memory)";
}

static int is_pem(const unsigned char *data)
{
    /* data is NUL-terminated by tls.c; DER has a NUL within a few bytes */
    return strstr((const char *)data, "-----BEGIN") != NULL;
}

/* Stateless, thread-safe RNG used when mbedTLS cannot lock its DRBG. */
static int mb_getrandom(unsigned char *out, size_t len)
{
    while (len > 0) {
        ssize_t n = getrandom(out, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return MBEDTLS_ERR_ENTROPY_SOURCE_FAILED;
        out += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Does the mbedTLS in use lock its DRBG (headers and loaded library)? */
static int mb_threading(void)
{
#if defined(MBEDTLS_THREADING_C)
#if defined(MBEDTLS_VERSION_C) && defined(MBEDTLS_VERSION_FEATURES)
    return mbedtls_version_check_feature("MBEDTLS_THREADING_C") == 0;
#else
    return 1;
#endif
#else
    return 0;
#endif
}

/* The RNG of every session of a config (p is the struct mb_cfg). */
static int mb_rng(void *p, unsigned char *out, size_t len)
{
    struct mb_cfg *c = p;

    if (c->shared_drbg)
        return mbedtls_ctr_drbg_random(&c->drbg, out, len);
    return mb_getrandom(out, len);
}

/* Parse PEM (any number of certificates) or concatenated DER. */
static SSOCK__TLS_NODISCARD int
mb_parse_crts(mbedtls_x509_crt *crt, const char *what, const char *file,
              const unsigned char *data, size_t len, char *err, size_t errlen)
{
    char eb[200];
    int ret;

    if (is_pem(data)) {
        ret = mbedtls_x509_crt_parse(crt, data, len + 1);
        if (ret < 0) {
            mb_errf(err, errlen, "%s '%s': %s", what, label(file),
                    mb_strerror(ret, eb, sizeof eb));
            return ret == MBEDTLS_ERR_X509_ALLOC_FAILED ? SSOCK_ENOMEM
                                                        : SSOCK_ECERTPARSE;
        }
        if (ret > 0) {
            mb_errf(err, errlen,
                    "%s '%s': %d certificate(s) could not be parsed", what,
                    label(file), ret);
            return SSOCK_ECERTPARSE;
        }
    } else {
        const unsigned char *p = data, *end = data + len;

        while (p < end) {
            unsigned char *q = (unsigned char *)(uintptr_t)p;
            size_t body;

            ret = mbedtls_asn1_get_tag(&q, end, &body,
                                       MBEDTLS_ASN1_CONSTRUCTED |
                                           MBEDTLS_ASN1_SEQUENCE);
            if (ret == 0)
                ret =
                    mbedtls_x509_crt_parse_der(crt, p, (size_t)(q - p) + body);
            if (ret != 0) {
                mb_errf(err, errlen, "%s '%s': not PEM, and DER: %s", what,
                        label(file), mb_strerror(ret, eb, sizeof eb));
                return ret == MBEDTLS_ERR_X509_ALLOC_FAILED ? SSOCK_ENOMEM
                                                            : SSOCK_ECERTPARSE;
            }
            p = q + body;
        }
    }
    if (crt->raw.p == NULL) {
        mb_errf(err, errlen, "%s '%s': no certificate found", what,
                label(file));
        return SSOCK_ECERTPARSE;
    }
    return 0;
}

static void mb_date(const mbedtls_x509_time *t, char *buf, size_t len)
{
    (void)snprintf(buf, len, "%04d-%02d-%02d", t->year, t->mon, t->day);
}

/* Every certificate of our own chain (pair `pair`'s, from cert_file) must
 * be within its dates. */
static SSOCK__TLS_NODISCARD int
mb_check_times(const mbedtls_x509_crt *chain, const ssock_tls_options *o,
               size_t pair, const char *cert_file, char *err, size_t errlen)
{
    const mbedtls_x509_crt *c;
    char date[16], what[48];
    int i = 0;

    (void)ssock__tls_pair_what(what, sizeof what, pair, "certificate");
    for (c = chain; c != NULL && c->raw.p != NULL; c = c->next, i++) {
        const char *why;

        if (mbedtls_x509_time_is_past(&c->valid_to)) {
            why = "expired on";
            mb_date(&c->valid_to, date, sizeof date);
        } else if (mbedtls_x509_time_is_future(&c->valid_from)) {
            why = "is not valid before";
            mb_date(&c->valid_from, date, sizeof date);
        } else {
            continue;
        }
        if (!o->allow_expired_cert) {
            mb_errf(err, errlen,
                    "%s '%s' (#%d in chain) %s %s (set "
                    "allow_expired_cert to accept it)",
                    what, label(cert_file), i, why, date);
            return SSOCK_ECERTTIME;
        }
        mb_warn(err, errlen,
                "%s '%s' (#%d in chain) %s %s (accepted: "
                "allow_expired_cert)",
                what, label(cert_file), i, why, date);
    }
    return 0;
}

/* SNI: remember the name the client asked for, and serve the pair it
 * picks (ssock__tls_sni_pick; pair 0, the configuration's own certificate,
 * needs nothing: mbedTLS uses it when no handshake certificate is set).
 * Names with a NUL byte or longer than 255 bytes are refused
 * (unrecognized_name alert), as OpenSSL does; a name that matches nothing
 * gets pair 0. Under TLS 1.3 a second ClientHello (after a
 * HelloRetryRequest) comes here again with the same name. */
static int mb_sni(void *p, mbedtls_ssl_context *ssl, const unsigned char *name,
                  size_t len)
{
    struct mb_sess *s = (struct mb_sess *)(void *)ssl;
    struct mb_cfg *c = p;
    size_t pair;
    char *copy;

    if (len == 0 || len > 255 || memchr(name, 0, len) != NULL)
        return -1;
    copy = malloc(len + 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, name, len);
    copy[len] = '\0';
    free(s->sni);
    s->sni = copy;
    if (c->nextra == 0)
        return 0;
    pair = ssock__tls_sni_pick(&c->sni, copy, len);
    if (pair == 0 || pair > c->nextra)
        return 0;
    return mbedtls_ssl_set_hs_own_cert(ssl, &c->extra[pair - 1].chain,
                                       &c->extra[pair - 1].key);
}

static void mb_config_free(void *p)
{
    struct mb_cfg *c = p;
    size_t i;

    if (c == NULL)
        return;
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->chain);
    mbedtls_pk_free(&c->key);
    for (i = 0; c->extra != NULL && i < c->nextra; i++) {
        mbedtls_x509_crt_free(&c->extra[i].chain);
        mbedtls_pk_free(&c->extra[i].key);
    }
    free(c->extra);
    ssock__tls_sni_free(&c->sni);
    mbedtls_x509_crt_free(&c->ca);
    mbedtls_ctr_drbg_free(&c->drbg);
    mbedtls_entropy_free(&c->entropy);
    if (c->alpn != NULL) {
        for (i = 0; c->alpn[i] != NULL; i++)
            free(c->alpn[i]);
        free(c->alpn);
    }
    free(c);
}

static SSOCK__TLS_NODISCARD int mb_copy_alpn(struct mb_cfg *c,
                                             const ssock_tls_options *o)
{
    size_t i;

    c->alpn = calloc(o->alpn_count + 1, sizeof *c->alpn);
    if (c->alpn == NULL)
        return SSOCK_ENOMEM;
    for (i = 0; i < o->alpn_count; i++) {
        size_t n = strlen(o->alpn[i]);

        c->alpn[i] = malloc(n + 1);
        if (c->alpn[i] == NULL)
            return SSOCK_ENOMEM;
        memcpy(c->alpn[i], o->alpn[i], n + 1);
    }
    return 0;
}

/*
 * config_new, one named step per concern. Each step fills its part of `c`
 * and returns 0 or a negative SSOCK_E* with the message in err; the steps
 * run in the order of mb_config_new() and the first failure wins.
 */

/* The DRBG every session shares (when mbedTLS locks it). */
static SSOCK__TLS_NODISCARD int mb_step_rng(struct mb_cfg *c, char *err,
                                            size_t errlen)
{
    static const char pers[] = "ssock mbedtls config";
    char eb[200];
    int ret;

    if (!c->shared_drbg)
        return 0;
    ret = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy,
                                (const unsigned char *)pers, sizeof pers - 1);
    if (ret != 0) {
        mb_errf(err, errlen, "seeding the DRBG failed: %s",
                mb_strerror(ret, eb, sizeof eb));
        return SSOCK_ETLSCONFIG;
    }
    return 0;
}

/* A certificate chain, leaf first (pair `pair`, source `src`). */
static SSOCK__TLS_NODISCARD int mb_step_chain(mbedtls_x509_crt *chain,
                                              size_t pair,
                                              const ssock_tls_cert *src,
                                              char *err, size_t errlen)
{
    char what[48];

    return mb_parse_crts(
        chain, ssock__tls_pair_what(what, sizeof what, pair, "certificate"),
        src->cert_file, src->cert_mem, src->cert_len, err, errlen);
}

/* A private key (never encrypted). */
static SSOCK__TLS_NODISCARD int
mb_step_key(struct mb_cfg *c, mbedtls_pk_context *key, size_t pair,
            const ssock_tls_cert *src, char *err, size_t errlen)
{
    size_t len = is_pem(src->key_mem) ? src->key_len + 1 : src->key_len;
    char eb[200], what[48];
    int ret;

    (void)ssock__tls_pair_what(what, sizeof what, pair, "key");
#if MBEDTLS_VERSION_MAJOR >= 3
    ret = mbedtls_pk_parse_key(key, src->key_mem, len, NULL, 0, mb_rng, c);
#else
    (void)c;
    ret = mbedtls_pk_parse_key(key, src->key_mem, len, NULL, 0);
#endif
    if (ret == 0) {
        /* The same floor as OpenSSL's default security level (112 bits):
         * RSA >= 2048, EC >= 224 bits. */
        size_t bits = mbedtls_pk_get_bitlen(key);
        int rsa = mbedtls_pk_can_do(key, MBEDTLS_PK_RSA);
        if ((rsa && bits < 2048) || (!rsa && bits < 224)) {
            mb_errf(err, errlen,
                    "%s '%s': %s key of %zu bits is too weak (at least %d)",
                    what, label(src->key_file), rsa ? "RSA" : "EC", bits,
                    rsa ? 2048 : 224);
            return SSOCK_ETLSCONFIG;
        }
        return 0;
    }
    if (ret == MBEDTLS_ERR_PK_PASSWORD_REQUIRED)
        mb_errf(err, errlen,
                "%s '%s': encrypted private keys are not supported", what,
                label(src->key_file));
    else
        mb_errf(err, errlen, "%s '%s': %s", what, label(src->key_file),
                mb_strerror(ret, eb, sizeof eb));
    return ret == MBEDTLS_ERR_PK_ALLOC_FAILED ? SSOCK_ENOMEM : SSOCK_ECERTPARSE;
}

/* The key belongs to the leaf certificate. */
static SSOCK__TLS_NODISCARD int
mb_step_pair(struct mb_cfg *c, mbedtls_x509_crt *chain, mbedtls_pk_context *key,
             size_t pair, const ssock_tls_cert *src, char *err, size_t errlen)
{
    char eb[200], what[48];
    int ret;

#if MBEDTLS_VERSION_MAJOR >= 3
    ret = mbedtls_pk_check_pair(&chain->pk, key, mb_rng, c);
#else
    (void)c;
    ret = mbedtls_pk_check_pair(&chain->pk, key);
#endif
    if (ret == 0)
        return 0;
    mb_errf(err, errlen, "%s '%s' does not match certificate '%s': %s",
            ssock__tls_pair_what(what, sizeof what, pair, "key"),
            label(src->key_file), label(src->cert_file),
            mb_strerror(ret, eb, sizeof eb));
    return SSOCK_EKEYMISMATCH;
}

/* One pair: chain, key, key match, dates. */
static SSOCK__TLS_NODISCARD int
mb_load_pair(struct mb_cfg *c, mbedtls_x509_crt *chain, mbedtls_pk_context *key,
             size_t pair, const ssock_tls_cert *src, const ssock_tls_options *o,
             char *err, size_t errlen)
{
    int rc = mb_step_chain(chain, pair, src, err, errlen);

    if (rc == 0)
        rc = mb_step_key(c, key, pair, src, err, errlen);
    if (rc == 0)
        rc = mb_step_pair(c, chain, key, pair, src, err, errlen);
    if (rc == 0)
        rc = mb_check_times(chain, o, pair, src->cert_file, err, errlen);
    return rc;
}

/* The names of a leaf for SNI: its subjectAltName DNS names, else its
 * subject's last CN. The number of names added, or SSOCK_ENOMEM. */
static int mb_add_names(struct ssock__tls_sni *t, size_t pair,
                        const mbedtls_x509_crt *leaf)
{
    const mbedtls_x509_sequence *san;
    const mbedtls_x509_name *dn, *cn = NULL;
    int dns = 0, added = 0, r;

    for (san = &leaf->subject_alt_names; san != NULL; san = san->next) {
        if (san->buf.p == NULL ||
            (san->buf.tag & MBEDTLS_ASN1_TAG_CLASS_MASK) !=
                MBEDTLS_ASN1_CONTEXT_SPECIFIC ||
            (san->buf.tag & MBEDTLS_ASN1_TAG_VALUE_MASK) !=
                MBEDTLS_X509_SAN_DNS_NAME)
            continue;
        dns = 1;
        r = ssock__tls_sni_add(t, pair, san->buf.p, san->buf.len);
        if (r < 0)
            return r;
        added += r;
    }
    if (dns)
        return added;
    for (dn = &leaf->subject; dn != NULL; dn = dn->next)
        if (dn->oid.p != NULL &&
            MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &dn->oid) == 0)
            cn = dn;
    if (cn == NULL)
        return 0;
    return ssock__tls_sni_add(t, pair, cn->val.p, cn->val.len);
}

/* The extra pairs (SNI), each checked like pair 0, and the names of every
 * pair. Nothing to do without extra pairs. */
static SSOCK__TLS_NODISCARD int mb_step_extra(struct mb_cfg *c,
                                              const ssock_tls_options *o,
                                              char *err, size_t errlen)
{
    int r;

    if (o->extra_cert_count == 0)
        return 0;
    c->extra = calloc(o->extra_cert_count, sizeof *c->extra);
    if (c->extra == NULL) {
        mb_errf(err, errlen, "out of memory");
        return SSOCK_ENOMEM;
    }
    for (size_t i = 0; i < o->extra_cert_count; i++) {
        mbedtls_x509_crt_init(&c->extra[i].chain);
        mbedtls_pk_init(&c->extra[i].key);
        c->nextra = i + 1;
        r = mb_load_pair(c, &c->extra[i].chain, &c->extra[i].key, i + 1,
                         &o->extra_certs[i], o, err, errlen);
        if (r != 0)
            return r;
    }
    for (size_t p = 0; p <= c->nextra; p++) {
        r = mb_add_names(&c->sni, p,
                         p == 0 ? &c->chain : &c->extra[p - 1].chain);
        if (r < 0) {
            mb_errf(err, errlen, "out of memory");
            return r;
        }
        if (r == 0 && p > 0) {
            char what[48];

            mb_warn(err, errlen,
                    "%s '%s' has no usable DNS name (subjectAltName or CN): "
                    "SNI never selects it",
                    ssock__tls_pair_what(what, sizeof what, p, "certificate"),
                    label(o->extra_certs[p - 1].cert_file));
        }
    }
    return 0;
}

/* The CA bundle client certificates must chain to (optional). */
static SSOCK__TLS_NODISCARD int mb_step_ca(struct mb_cfg *c,
                                           const ssock_tls_options *o,
                                           char *err, size_t errlen)
{
    int rc;

    if (o->ca_mem == NULL)
        return 0;
    rc = mb_parse_crts(&c->ca, "CA", o->ca_file, o->ca_mem, o->ca_len, err,
                       errlen);
    if (rc == 0 && o->verify_client == SSOCK_TLS_VERIFY_NONE)
        mb_warn(err, errlen, "CA '%s' is unused: verify_client is none",
                label(o->ca_file));
    return rc;
}

/* Defaults, RNG, versions, suites, groups; no renegotiation, no PSK; no
 * session cache and no ticket callbacks are installed: no resumption. */
static SSOCK__TLS_NODISCARD int
mb_step_versions_suites(struct mb_cfg *c, const ssock_tls_options *o, char *err,
                        size_t errlen)
{
    char eb[200];
    int ret;

    ret = mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_SERVER,
                                      MBEDTLS_SSL_TRANSPORT_STREAM,
                                      MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret != 0) {
        mb_errf(err, errlen, "mbedtls_ssl_config_defaults: %s",
                mb_strerror(ret, eb, sizeof eb));
        return SSOCK_ETLSCONFIG;
    }
    mbedtls_ssl_conf_rng(&c->conf, mb_rng, c);
#if MBEDTLS_VERSION_MAJOR >= 3
    mbedtls_ssl_conf_min_tls_version(&c->conf,
                                     o->min_version == SSOCK_TLS_VERSION_1_3
                                         ? MBEDTLS_SSL_VERSION_TLS1_3
                                         : MBEDTLS_SSL_VERSION_TLS1_2);
#else
    (void)o;
    mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
#endif
    mbedtls_ssl_conf_ciphersuites(&c->conf, mb_suites);
#if MBEDTLS_VERSION_NUMBER >= 0x03010000
    mbedtls_ssl_conf_groups(&c->conf, mb_groups);
#else
    mbedtls_ssl_conf_curves(&c->conf, mb_curves);
#endif
#if defined(MBEDTLS_SSL_RENEGOTIATION)
    mbedtls_ssl_conf_renegotiation(&c->conf,
                                   MBEDTLS_SSL_RENEGOTIATION_DISABLED);
#endif
#if MB_HAVE_TLS13
    /* (EC)DHE only: no PSK modes (there is no PSK and no ticket anyway). */
    mbedtls_ssl_conf_tls13_key_exchange_modes(
        &c->conf, MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL);
#endif
    return 0;
}

/* Client certificates: mode and CA; then our own chain and key. */
static SSOCK__TLS_NODISCARD int mb_step_verification(struct mb_cfg *c,
                                                     const ssock_tls_options *o,
                                                     char *err, size_t errlen)
{
    char eb[200];
    int ret;

    mbedtls_ssl_conf_authmode(&c->conf,
                              o->verify_client == SSOCK_TLS_VERIFY_REQUIRED
                                  ? MBEDTLS_SSL_VERIFY_REQUIRED
                              : o->verify_client == SSOCK_TLS_VERIFY_OPTIONAL
                                  ? MBEDTLS_SSL_VERIFY_OPTIONAL
                                  : MBEDTLS_SSL_VERIFY_NONE);
    if (o->ca_mem != NULL)
        mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
    ret = mbedtls_ssl_conf_own_cert(&c->conf, &c->chain, &c->key);
    if (ret != 0) {
        mb_errf(err, errlen, "mbedtls_ssl_conf_own_cert: %s",
                mb_strerror(ret, eb, sizeof eb));
        return SSOCK_ENOMEM;
    }
    return 0;
}

/* ALPN list (server's order) and the SNI callback (stores per session). */
static SSOCK__TLS_NODISCARD int mb_step_alpn_sni(struct mb_cfg *c,
                                                 const ssock_tls_options *o,
                                                 char *err, size_t errlen)
{
    char eb[200];
    int ret;

    if (o->alpn_count > 0) {
        if (mb_copy_alpn(c, o) != 0) {
            mb_errf(err, errlen, "out of memory");
            return SSOCK_ENOMEM;
        }
        ret = mbedtls_ssl_conf_alpn_protocols(&c->conf, (const char **)c->alpn);
        if (ret != 0) {
            mb_errf(err, errlen, "ALPN list: %s",
                    mb_strerror(ret, eb, sizeof eb));
            return SSOCK_ETLSCONFIG;
        }
    }
    mbedtls_ssl_conf_sni(&c->conf, mb_sni, c);
    return 0;
}

/* One NSS key log line: "LABEL <client random> <secret>", lower-case hex. */
static void mb_keylog_line(const struct mb_cfg *c, const char *label,
                           const unsigned char client_random[32],
                           const unsigned char *secret, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char line[64 + 1 + 64 + 1 + 2 * 64 + 1];
    size_t at;

    if (c->keylog == NULL || len > 64 || strlen(label) > 63)
        return;
    at = (size_t)snprintf(line, sizeof line, "%s ", label);
    for (size_t i = 0; i < 32; i++) {
        line[at++] = hex[client_random[i] >> 4];
        line[at++] = hex[client_random[i] & 15];
    }
    line[at++] = ' ';
    for (size_t i = 0; i < len; i++) {
        line[at++] = hex[secret[i] >> 4];
        line[at++] = hex[secret[i] & 15];
    }
    line[at] = '\0';
    c->keylog(line, c->keylog_arg);
}

#if MBEDTLS_VERSION_MAJOR >= 3
/* 3.x: per session (mb_session_new); TLS 1.2 master secret and the TLS 1.3
 * traffic secrets. */
static void mb_export_keys(void *p, mbedtls_ssl_key_export_type type,
                           const unsigned char *secret, size_t len,
                           const unsigned char client_random[32],
                           const unsigned char server_random[32],
                           mbedtls_tls_prf_types prf)
{
    const struct mb_cfg *c = p;
    const char *label;

    (void)server_random;
    (void)prf;
    switch (type) {
    case MBEDTLS_SSL_KEY_EXPORT_TLS12_MASTER_SECRET:
        label = "CLIENT_RANDOM";
        break;
#if MB_HAVE_TLS13
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_CLIENT_EARLY_SECRET:
        label = "CLIENT_EARLY_TRAFFIC_SECRET";
        break;
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_EARLY_EXPORTER_SECRET:
        label = "EARLY_EXPORTER_SECRET";
        break;
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_CLIENT_HANDSHAKE_TRAFFIC_SECRET:
        label = "CLIENT_HANDSHAKE_TRAFFIC_SECRET";
        break;
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_SERVER_HANDSHAKE_TRAFFIC_SECRET:
        label = "SERVER_HANDSHAKE_TRAFFIC_SECRET";
        break;
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_CLIENT_APPLICATION_TRAFFIC_SECRET:
        label = "CLIENT_TRAFFIC_SECRET_0";
        break;
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_SERVER_APPLICATION_TRAFFIC_SECRET:
        label = "SERVER_TRAFFIC_SECRET_0";
        break;
#endif
    default:
        return;
    }
    mb_keylog_line(c, label, client_random, secret, len);
}
#elif defined(MBEDTLS_SSL_EXPORT_KEYS)
/* 2.28: per configuration; TLS 1.2 only, the 48-byte master secret. */
static int mb_export_keys_228(void *p, const unsigned char *ms,
                              const unsigned char *kb, size_t maclen,
                              size_t keylen, size_t ivlen,
                              const unsigned char client_random[32],
                              const unsigned char server_random[32],
                              mbedtls_tls_prf_types prf)
{
    (void)kb;
    (void)maclen;
    (void)keylen;
    (void)ivlen;
    (void)server_random;
    (void)prf;
    mb_keylog_line(p, "CLIENT_RANDOM", client_random, ms, 48);
    return 0;
}
#endif

/* The key-log callback, when asked for (never from the environment). */
static SSOCK__TLS_NODISCARD int mb_step_keylog(struct mb_cfg *c, char *err,
                                               size_t errlen)
{
    if (c->keylog == NULL)
        return 0;
#if MBEDTLS_VERSION_MAJOR >= 3
    (void)err;
    (void)errlen;
    return 0; /* installed per session */
#elif defined(MBEDTLS_SSL_EXPORT_KEYS)
    (void)err;
    (void)errlen;
    mbedtls_ssl_conf_export_keys_ext_cb(&c->conf, mb_export_keys_228, c);
    return 0;
#else
    mb_errf(err, errlen,
            "keylog needs mbedTLS built with MBEDTLS_SSL_EXPORT_KEYS");
    return SSOCK_ETLSCONFIG;
#endif
}

static int mb_config_new(const ssock_tls_options *o, void **bcfg, char *err,
                         size_t errlen)
{
    struct mb_cfg *c = NULL;
    ssock_tls_cert pair0;
    int rc;

    *bcfg = NULL;
    err[0] = '\0';
    if (o->min_version == SSOCK_TLS_VERSION_1_3 && !MB_HAVE_TLS13) {
        mb_errf(err, errlen,
                "TLS 1.3 is not available in mbedTLS %s (built without "
                "MBEDTLS_SSL_PROTO_TLS1_3); use min_version TLS 1.2 or the "
                "OpenSSL backend",
                MBEDTLS_VERSION_STRING);
        return SSOCK_EVERSION;
    }
#if MB_NEED_PSA
    /* process-global, idempotent and locked in 3.6: see the top */
    if (psa_crypto_init() != PSA_SUCCESS) {
        mb_errf(err, errlen, "psa_crypto_init failed");
        return SSOCK_ETLSCONFIG;
    }
#endif
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        mb_errf(err, errlen, "out of memory");
        return SSOCK_ENOMEM;
    }
    c->verify = o->verify_client;
    c->keylog = o->keylog;
    c->keylog_arg = o->keylog_arg;
    c->verify_peer = o->verify_peer;
    c->verify_peer_arg = o->verify_peer_arg;
    c->shared_drbg = mb_threading();
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_x509_crt_init(&c->chain);
    mbedtls_pk_init(&c->key);
    mbedtls_x509_crt_init(&c->ca);
    mbedtls_entropy_init(&c->entropy);
    mbedtls_ctr_drbg_init(&c->drbg);
    ssock__tls_sni_init(&c->sni);
    pair0.cert_file = o->cert_file;
    pair0.cert_mem = o->cert_mem;
    pair0.cert_len = o->cert_len;
    pair0.key_file = o->key_file;
    pair0.key_mem = o->key_mem;
    pair0.key_len = o->key_len;

    rc = mb_step_rng(c, err, errlen);
    if (rc == 0) /* chain, key, key match, dates */
        rc = mb_load_pair(c, &c->chain, &c->key, 0, &pair0, o, err, errlen);
    if (rc == 0)
        rc = mb_step_extra(c, o, err, errlen); /* the same, SNI names */
    if (rc == 0)
        rc = mb_step_ca(c, o, err, errlen);
    if (rc == 0)
        rc = mb_step_versions_suites(c, o, err, errlen);
    if (rc == 0)
        rc = mb_step_verification(c, o, err, errlen);
    if (rc == 0)
        rc = mb_step_alpn_sni(c, o, err, errlen);
    if (rc == 0)
        rc = mb_step_keylog(c, err, errlen);
    if (rc == 0) {
        *bcfg = c;
        c = NULL;
    }
    mb_config_free(c);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Sessions                                                            */
/* ------------------------------------------------------------------ */

static int would_block(int e)
{
    return e == EAGAIN || e == EWOULDBLOCK || e == EINTR;
}

/* A whole handshake message we sent (its start, at most sizeof f->msg). */
static void mb_sniff_msg(struct mb_sniff *f, int type)
{
    const unsigned char *m = f->msg;
    size_t got = f->msg_got, p, end;

    if (type == 12) {                /* ServerKeyExchange: ECParameters first */
        if (got >= 3 && m[0] == 3) { /* named_curve */
            f->group = (unsigned)m[1] << 8 | m[2];
            f->done = 1;
        }
        return;
    }
    if (type != 2) /* ServerHello (or HelloRetryRequest) */
        return;
    p = 2 + 32; /* legacy_version, random */
    if (p + 1 > got)
        return;
    p += 1 + m[p]; /* session id */
    p += 2 + 1;    /* cipher suite, compression */
    if (p + 2 > got)
        return;
    end = p + 2 + ((size_t)m[p] << 8 | m[p + 1]);
    p += 2;
    if (end > got)
        end = got;
    while (p + 4 <= end) {
        unsigned et = (unsigned)m[p] << 8 | m[p + 1];
        size_t el = (size_t)m[p + 2] << 8 | m[p + 3];

        p += 4;
        if (et == 0x0033 && el >= 2 && p + 2 <= end) { /* key_share */
            f->group = (unsigned)m[p] << 8 | m[p + 1];
            f->done = 1;
            return;
        }
        p += el;
    }
}

static void mb_sniff_bytes(struct mb_sniff *f, const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n && !f->done; i++) {
        if (f->rec_left == 0) { /* record header */
            f->rec_hdr[f->rec_got++] = b[i];
            if (f->rec_got == 5) {
                f->rec_got = 0;
                f->rec_left = (size_t)f->rec_hdr[3] << 8 | f->rec_hdr[4];
                if (f->rec_hdr[0] != 22) /* CCS, alert, encrypted: stop */
                    f->done = 1;
            }
            continue;
        }
        f->rec_left--;
        if (f->msg_hdr_got < 4) { /* handshake message header */
            f->msg_hdr[f->msg_hdr_got++] = b[i];
            if (f->msg_hdr_got == 4) {
                f->msg_left = (size_t)f->msg_hdr[1] << 16 |
                              (size_t)f->msg_hdr[2] << 8 | f->msg_hdr[3];
                f->msg_got = 0;
                if (f->msg_left == 0) {
                    mb_sniff_msg(f, f->msg_hdr[0]);
                    f->msg_hdr_got = 0;
                }
            }
            continue;
        }
        if (f->msg_got < sizeof f->msg)
            f->msg[f->msg_got++] = b[i];
        if (--f->msg_left == 0) {
            mb_sniff_msg(f, f->msg_hdr[0]);
            f->msg_hdr_got = 0;
        }
    }
}

static int mb_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct mb_sess *s = ctx;
    ssize_t n;

    if (len > INT_MAX)
        len = INT_MAX;
    errno = 0;
    n = s->io.send(s->io.ctx, buf, len);
    if (n > 0 && !s->sniff.done && !s->hs_done)
        mb_sniff_bytes(&s->sniff, buf, (size_t)n);
    if (n > 0)
        return (int)n;
    if (n < 0 && would_block(errno))
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    s->io_errno = (n < 0 && errno != 0) ? errno : EIO;
    return MBEDTLS_ERR_NET_SEND_FAILED;
}

static int mb_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct mb_sess *s = ctx;
    ssize_t n;

    if (len > INT_MAX)
        len = INT_MAX;
    errno = 0;
    n = s->io.recv(s->io.ctx, buf, len);
    if (n > 0)
        return (int)n;
    if (n == 0) {
        s->eof = 1;
        return 0; /* mbedTLS reports MBEDTLS_ERR_SSL_CONN_EOF */
    }
    if (would_block(errno))
        return MBEDTLS_ERR_SSL_WANT_READ;
    s->io_errno = errno != 0 ? errno : EIO;
    return MBEDTLS_ERR_NET_RECV_FAILED;
}

/* extendedKeyUsage absent, or listing clientAuth. Unlike
 * mbedtls_x509_crt_check_extended_key_usage(), anyExtendedKeyUsage alone
 * is not enough: OpenSSL's "ssl_client" purpose refuses it too, and both
 * backends must give the same verdict. */
static int mb_eku_allows_client(const mbedtls_x509_crt *crt)
{
    const mbedtls_x509_sequence *cur;

    if (crt->ext_key_usage.buf.p == NULL)
        return 1; /* no extendedKeyUsage extension */
    for (cur = &crt->ext_key_usage; cur != NULL; cur = cur->next)
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_CLIENT_AUTH, &cur->buf) == 0)
            return 1;
    return 0;
}

static char *mb_subject(const mbedtls_x509_name *dn);

/* The client chain as sent (leaf first): pointer and length arrays into
 * the certificates' raw DER. 0 or SSOCK_ENOMEM. */
static int mb_chain(const mbedtls_x509_crt *leaf, const unsigned char ***derp,
                    size_t **lenp, size_t *countp)
{
    const mbedtls_x509_crt *x;
    size_t count = 0, k = 0;

    *derp = NULL;
    *lenp = NULL;
    *countp = 0;
    for (x = leaf; x != NULL && x->raw.p != NULL; x = x->next)
        count++;
    if (count == 0)
        return 0;
    *derp = calloc(count, sizeof **derp);
    *lenp = calloc(count, sizeof **lenp);
    if (*derp == NULL || *lenp == NULL) {
        free(*derp);
        free(*lenp);
        *derp = NULL;
        *lenp = NULL;
        return SSOCK_ENOMEM;
    }
    for (x = leaf; x != NULL && x->raw.p != NULL; x = x->next, k++) {
        (*derp)[k] = x->raw.p;
        (*lenp)[k] = x->raw.len;
    }
    *countp = count;
    return 0;
}

/* The verify hook on a chain mbedTLS has verified: 0 accepts. */
static int mb_call_hook(struct mb_sess *s, const mbedtls_x509_crt *leaf)
{
    const unsigned char **der;
    size_t *len, count;
    ssock_tls_peer peer;
    char *subject;
    int r;

    if (mb_chain(leaf, &der, &len, &count) != 0 || count == 0)
        return -1; /* out of memory: refuse rather than skip the hook */
    subject = mb_subject(&leaf->subject);
    memset(&peer, 0, sizeof peer);
    peer.struct_size = sizeof peer;
    peer.count = count;
    peer.der = der;
    peer.der_len = len;
    peer.subject = subject;
    r = s->cfg->verify_peer(&peer, s->cfg->verify_peer_arg);
    free(subject);
    free(der);
    free(len);
    return r;
}

/* Client chain verification (per session, so the flags can be kept for the
 * error text). A non-zero return makes mbedTLS fail the handshake even in
 * OPTIONAL mode, which gives SSOCK_TLS_VERIFY_OPTIONAL its meaning: no
 * certificate is fine, a bad one is not. */
static int mb_verify(void *p, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    struct mb_sess *s = p;

    /* The leaf's usage, checked here so that OPTIONAL refuses it too
     * (mbedTLS's own check after this callback only sets verify_result in
     * OPTIONAL mode), with the OpenSSL backend's verdict: keyUsage, when
     * present, must allow digitalSignature (CertificateVerify is signed);
     * extendedKeyUsage, when present, must list clientAuth. */
    if (depth == 0) {
        if (mbedtls_x509_crt_check_key_usage(
                crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE) != 0)
            *flags |= MBEDTLS_X509_BADCERT_KEY_USAGE;
        if (!mb_eku_allows_client(crt))
            *flags |= MBEDTLS_X509_BADCERT_EXT_KEY_USAGE;
    }
    s->vflags |= *flags;
    if (depth == 0 && s->vflags == 0 && s->cfg->verify_peer != NULL &&
        mb_call_hook(s, crt) != 0) {
        /* BADCERT_OTHER: mbedTLS answers with an access_denied alert */
        s->hook_rejected = 1;
        *flags |= MBEDTLS_X509_BADCERT_OTHER;
        s->vflags |= *flags;
    }
    return *flags != 0 ? MBEDTLS_ERR_X509_CERT_VERIFY_FAILED : 0;
}

static void mb_set_error(struct mb_sess *s, int ret)
{
    char eb[200];

    if (s->hook_rejected) {
        (void)snprintf(s->err, sizeof s->err, "%s",
                       SSOCK__TLS_REJECTED_BY_HOOK);
    } else if (s->io_errno != 0) {
        (void)snprintf(s->err, sizeof s->err, "transport error: %s",
                       ssock__tls_errno_text(s->io_errno, eb, sizeof eb));
    } else if (s->vflags != 0 && (ret == MBEDTLS_ERR_X509_FATAL_ERROR ||
                                  ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED)) {
        /* our verify callback refused the client chain: say why */
        char vi[200];
        size_t n;
        char *q;

        vi[0] = '\0';
        (void)mbedtls_x509_crt_verify_info(vi, sizeof vi, "", s->vflags);
        for (q = vi; *q != '\0'; q++)
            if (*q == '\n')
                *q = ';';
        n = strlen(vi);
        while (n > 0 && (vi[n - 1] == ';' || vi[n - 1] == ' '))
            vi[--n] = '\0';
        (void)snprintf(s->err, sizeof s->err,
                       "client certificate rejected: %s (flags 0x%x)", vi,
                       (unsigned)s->vflags);
    } else {
        (void)snprintf(s->err, sizeof s->err, "%s",
                       mb_strerror(ret, eb, sizeof eb));
    }
}

/* Map an mbedTLS result (not > 0) to the table's codes. */
static int mb_result(struct mb_sess *s, int ret)
{
    if (ret == MBEDTLS_ERR_SSL_WANT_READ)
        return SSOCK__TLS_WANT_READ;
    if (ret == MBEDTLS_ERR_SSL_WANT_WRITE)
        return SSOCK__TLS_WANT_WRITE;
    if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY ||
        ret == MBEDTLS_ERR_SSL_CONN_EOF) {
        (void)snprintf(s->err, sizeof s->err, "%s",
                       ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY
                           ? "peer sent close_notify"
                           : "peer closed the connection");
        return SSOCK_EOF;
    }
    mb_set_error(s, ret);
    if (s->io_errno != 0)
        return -s->io_errno;
    if (s->eof)
        return SSOCK_EOF;
    if (ret == MBEDTLS_ERR_SSL_ALLOC_FAILED)
        return SSOCK_ENOMEM;
    return SSOCK_ETLS;
}

static int mb_session_new(void *bcfg, const struct ssock__tls_io *io,
                          void **sessp)
{
    struct mb_cfg *c = bcfg;
    struct mb_sess *s;
    int ret;

    *sessp = NULL;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return SSOCK_ENOMEM;
    s->cfg = c;
    s->io = *io;
    mbedtls_ssl_init(&s->ssl);
    ret = mbedtls_ssl_setup(&s->ssl, &c->conf);
    if (ret != 0) {
        mbedtls_ssl_free(&s->ssl);
        free(s);
        return ret == MBEDTLS_ERR_SSL_ALLOC_FAILED ? SSOCK_ENOMEM : SSOCK_ETLS;
    }
    mbedtls_ssl_set_bio(&s->ssl, s, mb_send, mb_recv, NULL);
    if (c->verify != SSOCK_TLS_VERIFY_NONE)
        mbedtls_ssl_set_verify(&s->ssl, mb_verify, s);
#if MBEDTLS_VERSION_MAJOR >= 3
    if (c->keylog != NULL)
        mbedtls_ssl_set_export_keys_cb(&s->ssl, mb_export_keys, c);
#endif
    *sessp = s;
    return 0;
}

static int mb_handshake(void *p)
{
    struct mb_sess *s = p;
    int ret;

    if (s->hs_done)
        return 0;
    s->io_errno = 0;
    ret = mbedtls_ssl_handshake(&s->ssl);
    if (ret == 0) {
        s->hs_done = 1;
        return 0;
    }
    ret = mb_result(s, ret);
    if (ret == 0) /* mbedtls never returns that for a pending handshake */
        ret = SSOCK_ETLS;
    return ret;
}

#if MB_HAVE_TLS13
/* Is the record mbedTLS just refused a TLS 1.3 KeyUpdate (type 24)? It is
 * still in the input buffer (private fields: read only, for the message). */
static int mb_is_key_update(const struct mb_sess *s)
{
    const mbedtls_ssl_context *ssl = &s->ssl;

    return mbedtls_ssl_get_version_number(ssl) == MBEDTLS_SSL_VERSION_TLS1_3 &&
           ssl->MBEDTLS_PRIVATE(in_msgtype) == MBEDTLS_SSL_MSG_HANDSHAKE &&
           ssl->MBEDTLS_PRIVATE(in_msg) != NULL &&
           ssl->MBEDTLS_PRIVATE(in_msglen) >= 1 &&
           ssl->MBEDTLS_PRIVATE(in_msg)[0] == 24;
}
#endif

static int mb_read(void *p, void *buf, size_t len, size_t *n)
{
    struct mb_sess *s = p;
    int ret;

    *n = 0;
    if (len == 0)
        return 0;
    if (len > INT_MAX)
        len = INT_MAX;
    s->io_errno = 0;
    /* 0 from mbedtls_ssl_read() is an empty application_data record (the
     * transport's EOF comes back as MBEDTLS_ERR_SSL_CONN_EOF), not the end
     * of the stream: read on. Each round reads a new record through the
     * transport (so the caller's read budget still applies), and mbedTLS
     * itself refuses a fourth empty record in a row; the bound is only a
     * belt. */
    for (int empty = 0;; empty++) {
        ret = mbedtls_ssl_read(&s->ssl, buf, len);
        if (ret != 0 || s->eof)
            break;
        s->empty_records = 1;
        if (empty >= 16)
            return SSOCK__TLS_WANT_READ;
    }
    if (ret > 0) {
        s->empty_records = 0;
        *n = (size_t)ret;
        return 0;
    }
#if MB_HAVE_TLS13
    if (ret == MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE && mb_is_key_update(s)) {
        (void)snprintf(s->err, sizeof s->err,
                       "the peer sent a TLS 1.3 KeyUpdate, which mbedTLS %s "
                       "does not support: connection failed (the OpenSSL "
                       "backend supports it)",
                       MBEDTLS_VERSION_STRING);
        return SSOCK_ETLS;
    }
#endif
    {
        int close_notify = ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY;

        ret = mb_result(s, ret);
        /* The transport ended (MBEDTLS_ERR_SSL_CONN_EOF, or 0 with the
         * transport at EOF) without close_notify: a possible truncation,
         * not a clean end. */
        if (ret == SSOCK_EOF && !close_notify) {
            (void)snprintf(s->err, sizeof s->err,
                           "peer closed the connection without close_notify "
                           "(possible truncation)");
            return SSOCK_ETRUNCATED;
        }
    }
    if (ret == SSOCK_ETLS && s->empty_records) {
        /* mbedTLS 2.28 reports its empty-record limit as a bad MAC */
        char was[160];

        (void)snprintf(was, sizeof was, "%.159s", s->err);
        (void)snprintf(s->err, sizeof s->err,
                       "too many empty records from the peer (mbedTLS: %s)",
                       was);
    }
    return ret;
}

static int mb_write(void *p, const void *buf, size_t len, size_t *n)
{
    struct mb_sess *s = p;
    int ret;

    *n = 0;
    if (len == 0)
        return 0;
    /* mbedtls_ssl_write must be retried with exactly the same length: it
     * then reports that length as written. Keep it. */
    if (s->wlen != 0) {
        if (len < s->wlen) {
            (void)snprintf(s->err, sizeof s->err,
                           "write retried with %zu bytes after WANT with %zu",
                           len, s->wlen);
            return SSOCK_EINVAL;
        }
        len = s->wlen;
    } else if (len > INT_MAX) {
        len = INT_MAX;
    }
    s->io_errno = 0;
    ret = mbedtls_ssl_write(&s->ssl, buf, len);
    if (ret > 0) {
        s->wlen = 0;
        *n = (size_t)ret;
        return 0;
    }
    ret = mb_result(s, ret);
    if (ret == SSOCK__TLS_WANT_READ || ret == SSOCK__TLS_WANT_WRITE)
        s->wlen = len;
    else
        s->wlen = 0;
    return ret;
}

static size_t mb_pending(void *p)
{
    struct mb_sess *s = p;

    return mbedtls_ssl_get_bytes_avail(&s->ssl);
}

static int mb_close_notify(void *p)
{
    struct mb_sess *s = p;
    int ret;

    s->io_errno = 0;
    ret = mbedtls_ssl_close_notify(&s->ssl);
    if (ret == 0)
        return 0;
    ret = mb_result(s, ret);
    return ret == SSOCK_EOF ? SSOCK_ETLS : ret;
}

static void mb_session_free(void *p)
{
    struct mb_sess *s = p;

    if (s == NULL)
        return;
    mbedtls_ssl_free(&s->ssl);
    free(s->sni);
    free(s->subject);
    free(s->peer_der);
    free(s->peer_len);
    free(s);
}

/* The whole subject, however long: mbedtls_x509_dn_gets() only says
 * "buffer too small", so grow until it fits (a certificate is at most a
 * few KiB, so its DN formats to less than 64 KiB). NULL on failure. */
static char *mb_subject(const mbedtls_x509_name *dn)
{
    size_t cap;

    for (cap = 256; cap <= 65536; cap *= 2) {
        char *buf = malloc(cap);
        int r;

        if (buf == NULL)
            return NULL;
        r = mbedtls_x509_dn_gets(buf, cap, dn);
        if (r >= 0 && (size_t)r + 1 < cap)
            return buf;
        free(buf);
        if (r != MBEDTLS_ERR_X509_BUFFER_TOO_SMALL && r < 0)
            return NULL;
    }
    return NULL;
}

static void mb_info(void *p, struct ssock__tls_info *out)
{
    struct mb_sess *s = p;

    memset(out, 0, sizeof *out);
    out->sni = s->sni;
    if (!s->hs_done)
        return;
    if (!s->info_ready) {
        const char *cs = mbedtls_ssl_get_ciphersuite(&s->ssl);
        const mbedtls_x509_crt *peer;
        size_t i;

        s->info_ready = 1;
        /* mbedTLS names are the IANA names with '-' for '_', except the
         * TLS 1.3 ones, "TLS1-3-AES-128-GCM-SHA256" for IANA's
         * "TLS_AES_128_GCM_SHA256" */
        if (cs != NULL) {
            size_t o = 0;

            if (strncmp(cs, "TLS1-3-", 7) == 0) {
                memcpy(s->cipher, "TLS_", 4);
                o = 4;
                cs += 7;
            }
            for (i = 0; cs[i] != '\0' && o + 1 < sizeof s->cipher; i++)
                s->cipher[o++] = cs[i] == '-' ? '_' : cs[i];
            s->cipher[o] = '\0';
        }
        peer = mbedtls_ssl_get_peer_cert(&s->ssl);
        if (peer != NULL && s->cfg->verify != SSOCK_TLS_VERIFY_NONE &&
            mbedtls_ssl_get_verify_result(&s->ssl) == 0) {
            s->subject = mb_subject(&peer->subject);
            /* on failure (no memory) the chain is simply absent */
            (void)mb_chain(peer, &s->peer_der, &s->peer_len, &s->peer_count);
        }
    }
    out->version = mbedtls_ssl_get_version(&s->ssl);
    out->cipher = s->cipher[0] != '\0' ? s->cipher : NULL;
    out->group = ssock__tls_group_name(s->sniff.group);
    out->alpn = mbedtls_ssl_get_alpn_protocol(&s->ssl);
    out->peer_subject = s->subject;
    out->peer_count = s->peer_count;
    out->peer_der = s->peer_der;
    out->peer_len = s->peer_len;
}

static const char *mb_session_error(void *p)
{
    struct mb_sess *s = p;

    return s->err;
}

/*
 * Tests and fuzzing only (ssock__tls_config_set_test_rng): sessions take
 * every random number from f_rng. In 2.28 the conf RNG is the only one a
 * server handshake draws from: ServerHello random (after the 4 bytes of
 * time) and session id, the ECDHE key (mbedtls_ecdh_make_params), ECDSA
 * signing (deterministic nonce, blinding from the conf RNG) and the
 * shared-secret blinding (mbedtls_ecdh_calc_secret). Verifying a client
 * signature draws nothing, or from ECP's internal DRBG seeded from the
 * scalar (deterministic); AEAD record nonces are counters; there is no
 * session cache or ticket key. The config's own DRBG (c->drbg) was only
 * used through this conf RNG (and by 3.x key parsing in config_new, long
 * done), so it simply goes unused.
 */
static int mb_set_rng(void *bcfg, int (*f_rng)(void *, unsigned char *, size_t),
                      void *p_rng)
{
    struct mb_cfg *c = bcfg;

    mbedtls_ssl_conf_rng(&c->conf, f_rng, p_rng);
    return 0;
}

const struct ssock__tls_backend ssock__tls_mbedtls = {
    .name = "mbedtls",
    .config_new = mb_config_new,
    .config_free = mb_config_free,
    .session_new = mb_session_new,
    .handshake = mb_handshake,
    .read = mb_read,
    .write = mb_write,
    .pending = mb_pending,
    .close_notify = mb_close_notify,
    .session_free = mb_session_free,
    .info = mb_info,
    .session_error = mb_session_error,
    .set_rng = mb_set_rng,
};
