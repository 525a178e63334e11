/*
 * tls_openssl.c — the OpenSSL 3 backend.
 *
 * The transport is a custom BIO over the ssock__tls_io callbacks, so every
 * byte goes through the library's own send (MSG_NOSIGNAL) and recv. No
 * process-wide state is changed beyond OpenSSL's own automatic
 * initialisation; nothing is printed (the error queue is drained into our
 * buffers); PEM reading never prompts for a password.
 *
 * The one process-wide object: the BIO_METHOD of that custom BIO. It is
 * created once per process, on the first configuration, under
 * pthread_once(), is never changed afterwards (immutable: only read by
 * BIO_new), and is never freed (it is a few dozen bytes, released with the
 * process). One per configuration would be wrong: BIO_get_new_index()
 * hands out process-wide indexes that are never given back, and OpenSSL 3
 * refuses indexes above 255 (BIO_TYPE_MASK), so a process that built and
 * freed a few hundred configurations could no longer build one.
 *
 * Threads: the SSL_CTX is immutable after config_new and shared by all
 * sessions (OpenSSL 3 is thread-safe for that). The error queue is
 * per-thread; it is cleared before each operation and drained after a
 * failure.
 *
 * Memory: SSL_MODE_RELEASE_BUFFERS returns the record buffers of idle
 * sessions (as nginx does); measured about 14 KiB of heap per idle session
 * after the handshake.
 */
#include "tls_backend.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#if OPENSSL_VERSION_NUMBER < 0x30000000L
#error "the ssock OpenSSL backend needs OpenSSL 3"
#endif

/* An extra certificate/key pair (SNI, ssock_tls_options.extra_certs). */
struct os_pair {
    X509 *leaf;
    STACK_OF(X509) * rest; /* the chain after the leaf (may be empty) */
    EVP_PKEY *pk;
};

struct os_cfg {
    SSL_CTX *ctx;          /* with pair 0 as its certificate */
    struct os_pair *extra; /* pairs 1..nextra, for SNI */
    size_t nextra;
    struct ssock__tls_sni sni; /* names of every pair (when nextra > 0) */
    unsigned char *alpn;       /* wire format: length-prefixed names */
    unsigned int alpn_len;
    int verify;
    ssock_tls_keylog_fn keylog; /* NULL: off */
    void *keylog_arg;
    ssock_tls_verify_fn verify_peer; /* NULL: off */
    void *verify_peer_arg;
};

struct os_sess {
    SSL *ssl;
    struct os_cfg *cfg;
    struct ssock__tls_io io;
    int io_errno; /* errno of the last failed io call, 0 if none */
    int eof;      /* io recv returned 0 */
    int hs_done;
    int info_ready;
    int close_notify;  /* the peer's close_notify was read */
    int hook_rejected; /* verify_peer refused the client certificate */
    char *sni;
    char *subject;
    size_t peer_count; /* verified client chain, DER, leaf first */
    unsigned char **peer_der;
    size_t *peer_len;
    char alpn[256];
    char err[256];
};

static const char os_ciphers12[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const char os_ciphers13[] = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_"
                                   "SHA384:TLS_CHACHA20_POLY1305_SHA256";
static const char os_groups[] = "X25519:P-256:P-384:P-521";

static void os_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void os_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void os_append(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void os_append(char *buf, size_t len, const char *fmt, ...)
{
    size_t used = strlen(buf);
    va_list ap;

    if (used + 1 >= len)
        return;
    va_start(ap, fmt);
    (void)vsnprintf(buf + used, len - used, fmt, ap);
    va_end(ap);
}

/* Append the thread's OpenSSL error queue ("error:...; error:...") to buf
 * and empty the queue. Appends `none` when the queue is empty. */
static void os_drain(char *buf, size_t len, const char *none)
{
    unsigned long e;
    const char *data;
    int flags, n = 0;

    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        char one[256];

        ERR_error_string_n(e, one, sizeof one);
        os_append(buf, len, "%s%s", n++ > 0 ? "; " : "", one);
        if ((flags & ERR_TXT_STRING) != 0 && data != NULL && data[0] != '\0')
            os_append(buf, len, " (%s)", data);
    }
    if (n == 0 && none != NULL)
        os_append(buf, len, "%s", none);
}

static const char *label(const char *file)
{
    return file != NULL ? file : "(memory)";
}

static int is_pem(const unsigned char *data)
{
    return strstr((const char *)data, "-----BEGIN") != NULL;
}

/* Never prompt on a terminal for a PEM pass phrase. */
static int os_no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Parse PEM (any number of certificates) or concatenated DER into a new
 * stack. */
static SSOCK__TLS_NODISCARD int
os_parse_crts(STACK_OF(X509) * *outp, const char *what, const char *file,
              const unsigned char *data, size_t len, char *err, size_t errlen)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    BIO *bio = NULL;
    X509 *x = NULL;
    int rc = 0;

    *outp = NULL;
    if (sk == NULL || len > INT_MAX)
        goto nomem;
    if (is_pem(data)) {
        bio = BIO_new_mem_buf(data, (int)len);
        if (bio == NULL)
            goto nomem;
        for (;;) {
            x = PEM_read_bio_X509(bio, NULL, os_no_password, NULL);
            if (x == NULL) {
                unsigned long e = ERR_peek_last_error();

                if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
                    ERR_GET_REASON(e) == PEM_R_NO_START_LINE &&
                    sk_X509_num(sk) > 0) {
                    ERR_clear_error(); /* clean end of the file */
                    break;
                }
                os_errf(err, errlen, "%s '%s': ", what, label(file));
                /* OpenSSL 3.0 reports bad base64 inside a block silently */
                os_drain(err, errlen,
                         "no readable PEM certificate (bad base64 or no "
                         "CERTIFICATE block)");
                rc = SSOCK_ECERTPARSE;
                goto out;
            }
            if (!sk_X509_push(sk, x))
                goto nomem;
            x = NULL;
        }
    } else {
        const unsigned char *p = data, *end = data + len;

        while (p < end) {
            x = d2i_X509(NULL, &p, (long)(end - p));
            if (x == NULL) {
                os_errf(err, errlen, "%s '%s': not PEM, and DER: ", what,
                        label(file));
                os_drain(err, errlen, "parse error");
                rc = SSOCK_ECERTPARSE;
                goto out;
            }
            if (!sk_X509_push(sk, x))
                goto nomem;
            x = NULL;
        }
    }
    *outp = sk;
    sk = NULL;
    goto out;
nomem:
    os_errf(err, errlen, "%s '%s': out of memory", what, label(file));
    rc = SSOCK_ENOMEM;
out:
    X509_free(x);
    BIO_free(bio);
    sk_X509_pop_free(sk, X509_free);
    ERR_clear_error();
    return rc;
}

/* The private key of pair `pair` (source `src`). */
static SSOCK__TLS_NODISCARD int os_parse_key(EVP_PKEY **outp, size_t pair,
                                             const ssock_tls_cert *src,
                                             char *err, size_t errlen)
{
    const unsigned char *data = src->key_mem;
    EVP_PKEY *pk = NULL;
    char what[48];
    int rc = 0;

    *outp = NULL;
    (void)ssock__tls_pair_what(what, sizeof what, pair, "key");
    if (src->key_len > LONG_MAX || src->key_len > INT_MAX) {
        os_errf(err, errlen, "%s '%s': too large", what, label(src->key_file));
        return SSOCK_ECERTPARSE;
    }
    if (is_pem(data)) {
        BIO *bio = BIO_new_mem_buf(data, (int)src->key_len);

        if (bio == NULL) {
            os_errf(err, errlen, "out of memory");
            return SSOCK_ENOMEM;
        }
        pk = PEM_read_bio_PrivateKey(bio, NULL, os_no_password, NULL);
        BIO_free(bio);
    } else {
        const unsigned char *p = data;

        pk = d2i_AutoPrivateKey(NULL, &p, (long)src->key_len);
    }
    if (pk == NULL) {
        os_errf(err, errlen, "%s '%s': ", what, label(src->key_file));
        if (strstr((const char *)data, "ENCRYPTED") != NULL)
            os_append(err, errlen,
                      "encrypted private keys are not supported; ");
        os_drain(err, errlen, "cannot parse");
        rc = SSOCK_ECERTPARSE;
    }
    ERR_clear_error();
    *outp = pk;
    return rc;
}

static void os_date(const ASN1_TIME *t, char *buf, size_t len)
{
    struct tm tm;

    if (ASN1_TIME_to_tm(t, &tm) != 1 ||
        strftime(buf, len, "%Y-%m-%d", &tm) == 0)
        (void)snprintf(buf, len, "(unreadable date)");
}

/* Every certificate of our own chain (pair `pair`'s, from cert_file) must
 * be within its dates. */
static SSOCK__TLS_NODISCARD int
os_check_times(STACK_OF(X509) * chain, const ssock_tls_options *o, size_t pair,
               const char *cert_file, char *err, size_t errlen)
{
    char date[32], what[48];
    int i;

    (void)ssock__tls_pair_what(what, sizeof what, pair, "certificate");
    for (i = 0; i < sk_X509_num(chain); i++) {
        X509 *x = sk_X509_value(chain, i);
        const char *why;

        if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
            why = "expired on";
            os_date(X509_get0_notAfter(x), date, sizeof date);
        } else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
            why = "is not valid before";
            os_date(X509_get0_notBefore(x), date, sizeof date);
        } else {
            continue;
        }
        if (!o->allow_expired_cert) {
            os_errf(err, errlen,
                    "%s '%s' (#%d in chain) %s %s (set "
                    "allow_expired_cert to accept it)",
                    what, label(cert_file), i, why, date);
            return SSOCK_ECERTTIME;
        }
        os_append(err, errlen,
                  "%s%s '%s' (#%d in chain) %s %s (accepted: "
                  "allow_expired_cert)",
                  err[0] != '\0' ? "\n" : "", what, label(cert_file), i, why,
                  date);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Custom BIO over ssock__tls_io                                       */
/* ------------------------------------------------------------------ */

static int would_block(int e)
{
    return e == EAGAIN || e == EWOULDBLOCK || e == EINTR;
}

static int os_bio_write(BIO *b, const char *buf, size_t len, size_t *written)
{
    struct os_sess *s = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    *written = 0;
    errno = 0;
    n = s->io.send(s->io.ctx, buf, len);
    if (n > 0) {
        *written = (size_t)n;
        return 1;
    }
    if (n < 0 && would_block(errno)) {
        BIO_set_retry_write(b);
        return 0;
    }
    s->io_errno = (n < 0 && errno != 0) ? errno : EIO;
    return 0;
}

static int os_bio_read(BIO *b, char *buf, size_t len, size_t *readbytes)
{
    struct os_sess *s = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    *readbytes = 0;
    errno = 0;
    n = s->io.recv(s->io.ctx, buf, len);
    if (n > 0) {
        *readbytes = (size_t)n;
        return 1;
    }
    if (n == 0) {
        s->eof = 1;
        return 0;
    }
    if (would_block(errno)) {
        BIO_set_retry_read(b);
        return 0;
    }
    s->io_errno = errno != 0 ? errno : EIO;
    return 0;
}

static long os_bio_ctrl(BIO *b, int cmd, long num, void *ptr);

/* The process-wide BIO_METHOD (see the top of this file): written once
 * inside pthread_once, read-only afterwards; pthread_once orders the write
 * before every reader that went through os_bio_method(). */
static pthread_once_t os_meth_once = PTHREAD_ONCE_INIT;
static BIO_METHOD *os_meth;

static void os_meth_make(void)
{
    int idx = BIO_get_new_index();
    BIO_METHOD *m =
        idx > 0 ? BIO_meth_new(idx | BIO_TYPE_SOURCE_SINK, "ssock io") : NULL;

    if (m != NULL && (!BIO_meth_set_write_ex(m, os_bio_write) ||
                      !BIO_meth_set_read_ex(m, os_bio_read) ||
                      !BIO_meth_set_ctrl(m, os_bio_ctrl))) {
        BIO_meth_free(m);
        m = NULL;
    }
    ERR_clear_error();
    os_meth = m;
}

/* The shared BIO_METHOD, or NULL if OpenSSL could not make it (out of
 * memory at the first call; then every config fails with SSOCK_ENOMEM). */
static const BIO_METHOD *os_bio_method(void)
{
    if (pthread_once(&os_meth_once, os_meth_make) != 0)
        return NULL;
    return os_meth;
}

static long os_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct os_sess *s = BIO_get_data(b);

    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* nothing buffered here */
    case BIO_CTRL_EOF:
        return s != NULL && s->eof;
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------ */
/* Callbacks                                                           */
/* ------------------------------------------------------------------ */

static int os_alpn_cb(SSL *ssl, const unsigned char **out,
                      unsigned char *outlen, const unsigned char *in,
                      unsigned int inlen, void *arg)
{
    struct os_cfg *c = arg;
    unsigned char *sel = NULL;

    (void)ssl;
    if (SSL_select_next_proto(&sel, outlen, c->alpn, c->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/*
 * Client certificate usage, the same verdict as the mbedTLS backend: a
 * leaf whose keyUsage extension exists must allow digitalSignature (the
 * client signs CertificateVerify with it), and one whose extendedKeyUsage
 * exists must list clientAuth (anyExtendedKeyUsage alone is not enough,
 * as in OpenSSL's own purpose check). OpenSSL's own
 * "ssl_client" purpose check already refuses the EKU case, but it accepts
 * a keyAgreement-only keyUsage; this callback makes the rule explicit and
 * the same on both backends.
 */
static int os_verify_cb(int ok, X509_STORE_CTX *x)
{
    X509 *cert;
    uint32_t fl;

    if (!ok || X509_STORE_CTX_get_error_depth(x) != 0)
        return ok;
    cert = X509_STORE_CTX_get_current_cert(x);
    if (cert == NULL)
        return ok;
    fl = X509_get_extension_flags(cert);
    if ((fl & EXFLAG_KUSAGE) != 0 &&
        (X509_get_key_usage(cert) & KU_DIGITAL_SIGNATURE) == 0) {
        X509_STORE_CTX_set_error(x, X509_V_ERR_KEYUSAGE_NO_DIGITAL_SIGNATURE);
        return 0;
    }
    if ((fl & EXFLAG_XKUSAGE) != 0 &&
        (X509_get_extended_key_usage(cert) & XKU_SSL_CLIENT) == 0) {
        X509_STORE_CTX_set_error(x, X509_V_ERR_INVALID_PURPOSE);
        return 0;
    }
    return ok;
}

/*
 * SNI: remember the name the client asked for, and serve the pair it
 * picks (ssock__tls_sni_pick). Pair 0 is the SSL_CTX's certificate, which
 * every SSL starts with; another pair replaces it in this SSL only: every
 * certificate slot is cleared first, so that an RSA pair 0 cannot stay
 * next to an ECDSA pair (OpenSSL would choose between them by key type),
 * then the pair's leaf, key and chain are set (reference counted, shared
 * by all sessions). OpenSSL calls this during ClientHello processing,
 * before the cipher suite (TLS 1.2) or the signature algorithm and
 * certificate (TLS 1.3) are chosen, with or without a server_name
 * extension; it has already refused a name with a NUL byte or longer than
 * 255 bytes. A name that matches nothing gets pair 0.
 */
static int os_sni_cb(SSL *ssl, int *al, void *arg)
{
    struct os_sess *s = SSL_get_app_data(ssl);
    const struct os_cfg *c = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    const struct os_pair *p;
    size_t n, pair;

    if (s == NULL || name == NULL || name[0] == '\0')
        return SSL_TLSEXT_ERR_OK;
    n = strlen(name);
    if (s->sni == NULL || strcmp(s->sni, name) != 0) {
        char *copy = malloc(n + 1);

        if (copy == NULL) {
            *al = SSL_AD_INTERNAL_ERROR;
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        }
        memcpy(copy, name, n + 1);
        free(s->sni);
        s->sni = copy;
    }
    if (c == NULL || c->nextra == 0)
        return SSL_TLSEXT_ERR_OK;
    pair = ssock__tls_sni_pick(&c->sni, name, n);
    if (pair == 0 || pair > c->nextra)
        return SSL_TLSEXT_ERR_OK;
    p = &c->extra[pair - 1];
    SSL_certs_clear(ssl);
    if (SSL_use_cert_and_key(ssl, p->leaf, p->pk, p->rest, 1) != 1) {
        *al = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}

static char *os_subject(X509 *x);

/* The key-log callback: OpenSSL already writes the NSS key log lines
 * (CLIENT_RANDOM for TLS 1.2; the traffic secrets and EXPORTER_SECRET for
 * TLS 1.3). Installed only when ssock_tls_options.keylog is set. */
static void os_keylog_cb(const SSL *ssl, const char *line)
{
    const struct os_cfg *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

    if (c != NULL && c->keylog != NULL)
        c->keylog(line, c->keylog_arg);
}

/* The client chain as sent, leaf first, as DER (OPENSSL_malloc'ed). On
 * the server side OpenSSL's peer chain may or may not start with the
 * leaf: it is skipped there when it does. 0 or SSOCK_ENOMEM. */
static int os_chain_der(X509 *leaf, STACK_OF(X509) * sent,
                        unsigned char ***derp, size_t **lenp, size_t *countp)
{
    int n = sent != NULL ? sk_X509_num(sent) : 0;
    int skip = n > 0 && X509_cmp(sk_X509_value(sent, 0), leaf) == 0;
    size_t count = (size_t)(1 + n - skip), k = 0;
    unsigned char **der = calloc(count, sizeof *der);
    size_t *len = calloc(count, sizeof *len);

    *derp = NULL;
    *lenp = NULL;
    *countp = 0;
    if (der == NULL || len == NULL)
        goto fail;
    for (int i = -1; i < n; i++) {
        X509 *x = i < 0 ? leaf : sk_X509_value(sent, i);
        int l;

        if (i == 0 && skip)
            continue;
        l = i2d_X509(x, &der[k]);
        if (l <= 0)
            goto fail;
        len[k++] = (size_t)l;
    }
    *derp = der;
    *lenp = len;
    *countp = count;
    return 0;
fail:
    for (size_t i = 0; der != NULL && i < count; i++)
        OPENSSL_free(der[i]);
    free(der);
    free(len);
    ERR_clear_error();
    return SSOCK_ENOMEM;
}

static void os_chain_free(unsigned char **der, size_t *len, size_t count)
{
    for (size_t i = 0; der != NULL && i < count; i++)
        OPENSSL_free(der[i]);
    free(der);
    free(len);
}

/*
 * The verify hook (ssock_tls_options.verify_peer), installed as the
 * SSL_CTX's certificate verification: OpenSSL's own X509_verify_cert()
 * first (with os_verify_cb), and only when it accepted the chain, the
 * hook. A rejection is X509_V_ERR_CERT_REJECTED: the handshake fails with
 * a bad_certificate alert.
 */
static int os_cert_verify_cb(X509_STORE_CTX *xs, void *arg)
{
    struct os_cfg *c = arg;
    SSL *ssl =
        X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct os_sess *s = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    unsigned char **der = NULL;
    size_t *len = NULL, count = 0;
    ssock_tls_peer peer;
    char *subject;
    int ok = X509_verify_cert(xs);

    if (ok != 1 || c->verify_peer == NULL || leaf == NULL)
        return ok;
    if (os_chain_der(leaf, X509_STORE_CTX_get0_untrusted(xs), &der, &len,
                     &count) != 0) {
        X509_STORE_CTX_set_error(xs, X509_V_ERR_OUT_OF_MEM);
        return 0;
    }
    subject = os_subject(leaf);
    memset(&peer, 0, sizeof peer);
    peer.struct_size = sizeof peer;
    peer.count = count;
    peer.der = (const unsigned char *const *)der;
    peer.der_len = len;
    peer.subject = subject;
    ok = c->verify_peer(&peer, c->verify_peer_arg) == 0;
    free(subject);
    os_chain_free(der, len, count);
    if (!ok) {
        if (s != NULL)
            s->hook_rejected = 1;
        X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REJECTED);
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

static void os_config_free(void *p)
{
    struct os_cfg *c = p;

    if (c == NULL)
        return;
    SSL_CTX_free(c->ctx);
    for (size_t i = 0; c->extra != NULL && i < c->nextra; i++) {
        X509_free(c->extra[i].leaf);
        sk_X509_pop_free(c->extra[i].rest, X509_free);
        EVP_PKEY_free(c->extra[i].pk);
    }
    free(c->extra);
    ssock__tls_sni_free(&c->sni);
    free(c->alpn);
    free(c);
}

static SSOCK__TLS_NODISCARD int os_setup_ctx(struct os_cfg *c,
                                             const ssock_tls_options *o,
                                             char *err, size_t errlen)
{
    static const unsigned char sid_ctx[] = "ssock";
    SSL_CTX *ctx = c->ctx;
    int mode;

    if (!SSL_CTX_set_min_proto_version(
            ctx, o->min_version == SSOCK_TLS_VERSION_1_3 ? TLS1_3_VERSION
                                                         : TLS1_2_VERSION)) {
        os_errf(err, errlen, "cannot set the minimum TLS version: ");
        os_drain(err, errlen, "refused");
        return SSOCK_EVERSION;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_NO_TICKET |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    (void)SSL_CTX_set_num_tickets(ctx, 0);
    (void)SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    (void)SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    /* Partial writes + moving buffer: write() consumes what one record
     * takes and may be retried from a moved buffer; idle buffers released. */
    (void)SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
                                    SSL_MODE_ENABLE_PARTIAL_WRITE |
                                    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_security_level(ctx, 2);
    if (!SSL_CTX_set_cipher_list(ctx, os_ciphers12) ||
        !SSL_CTX_set_ciphersuites(ctx, os_ciphers13) ||
        !SSL_CTX_set1_groups_list(ctx, os_groups)) {
        os_errf(err, errlen, "cipher or group list refused: ");
        os_drain(err, errlen, "unknown reason");
        return SSOCK_ETLSCONFIG;
    }
    mode = o->verify_client == SSOCK_TLS_VERIFY_REQUIRED
               ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
           : o->verify_client == SSOCK_TLS_VERIFY_OPTIONAL ? SSL_VERIFY_PEER
                                                           : SSL_VERIFY_NONE;
    SSL_CTX_set_verify(ctx, mode,
                       mode != SSL_VERIFY_NONE ? os_verify_cb : NULL);
    if (mode != SSL_VERIFY_NONE && c->verify_peer != NULL)
        SSL_CTX_set_cert_verify_callback(ctx, os_cert_verify_cb, c);
    SSL_CTX_set_tlsext_servername_callback(ctx, os_sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, c);
    if (c->keylog != NULL) {
        if (!SSL_CTX_set_app_data(ctx, c)) {
            os_errf(err, errlen, "out of memory");
            return SSOCK_ENOMEM;
        }
        SSL_CTX_set_keylog_callback(ctx, os_keylog_cb);
    }
    return 0;
}

static SSOCK__TLS_NODISCARD int os_copy_alpn(struct os_cfg *c,
                                             const ssock_tls_options *o)
{
    size_t i, total = 0, at = 0;

    for (i = 0; i < o->alpn_count; i++)
        total += 1 + strlen(o->alpn[i]);
    c->alpn = malloc(total);
    if (c->alpn == NULL)
        return SSOCK_ENOMEM;
    for (i = 0; i < o->alpn_count; i++) {
        size_t n = strlen(o->alpn[i]);

        c->alpn[at++] = (unsigned char)n;
        memcpy(c->alpn + at, o->alpn[i], n);
        at += n;
    }
    c->alpn_len = (unsigned int)total;
    return 0;
}

/*
 * config_new, one named step per concern (versions, suites and
 * verification are os_setup_ctx above). Each returns 0 or a negative
 * SSOCK_E* with the message in err; the first failure wins.
 */

/* The key belongs to the leaf certificate. */
static SSOCK__TLS_NODISCARD int os_step_pair(X509 *leaf, EVP_PKEY *pk,
                                             size_t pair,
                                             const ssock_tls_cert *src,
                                             char *err, size_t errlen)
{
    char what[48];

    if (X509_check_private_key(leaf, pk) == 1)
        return 0;
    os_errf(err, errlen, "%s '%s' does not match certificate '%s': ",
            ssock__tls_pair_what(what, sizeof what, pair, "key"),
            label(src->key_file), label(src->cert_file));
    os_drain(err, errlen, "key values mismatch");
    return SSOCK_EKEYMISMATCH;
}

/* One pair: chain, key, key match, dates. */
static SSOCK__TLS_NODISCARD int os_load_pair(STACK_OF(X509) * *chain,
                                             EVP_PKEY **pk, size_t pair,
                                             const ssock_tls_cert *src,
                                             const ssock_tls_options *o,
                                             char *err, size_t errlen)
{
    char what[48];
    int rc;

    rc = os_parse_crts(
        chain, ssock__tls_pair_what(what, sizeof what, pair, "certificate"),
        src->cert_file, src->cert_mem, src->cert_len, err, errlen);
    if (rc == 0 && sk_X509_num(*chain) == 0) {
        os_errf(err, errlen, "%s '%s': no certificate found", what,
                label(src->cert_file));
        rc = SSOCK_ECERTPARSE;
    }
    if (rc == 0)
        rc = os_parse_key(pk, pair, src, err, errlen);
    if (rc == 0)
        rc =
            os_step_pair(sk_X509_value(*chain, 0), *pk, pair, src, err, errlen);
    if (rc == 0)
        rc = os_check_times(*chain, o, pair, src->cert_file, err, errlen);
    return rc;
}

/* The names of a leaf for SNI: its subjectAltName DNS names, else its
 * subject's last CN. The number of names added, or SSOCK_ENOMEM. */
static int os_add_names(struct ssock__tls_sni *t, size_t pair, X509 *leaf)
{
    GENERAL_NAMES *gens =
        X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    X509_NAME *subject = X509_get_subject_name(leaf);
    int dns = 0, added = 0, r = 0, idx = -1, last = -1;

    for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

        if (g->type != GEN_DNS || g->d.dNSName == NULL)
            continue;
        dns = 1;
        r = ssock__tls_sni_add(t, pair, ASN1_STRING_get0_data(g->d.dNSName),
                               (size_t)ASN1_STRING_length(g->d.dNSName));
        if (r < 0)
            goto out;
        added += r;
    }
    if (dns || subject == NULL)
        goto out;
    while ((idx = X509_NAME_get_index_by_NID(subject, NID_commonName, idx)) >=
           0)
        last = idx;
    if (last >= 0) {
        const ASN1_STRING *d =
            X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, last));

        if (d != NULL) {
            r = ssock__tls_sni_add(t, pair, ASN1_STRING_get0_data(d),
                                   (size_t)ASN1_STRING_length(d));
            if (r > 0)
                added += r;
        }
    }
out:
    GENERAL_NAMES_free(gens);
    ERR_clear_error();
    return r < 0 ? r : added;
}

/*
 * The extra pairs (SNI), each checked like pair 0, then tried once on a
 * scratch SSL exactly as os_sni_cb will set them, so that what OpenSSL
 * refuses there (the security level's key size and signature rules, on
 * the leaf and on the chain) is refused now; and the names of every pair.
 * Nothing to do without extra pairs.
 */
static SSOCK__TLS_NODISCARD int os_step_extra(struct os_cfg *c, X509 *leaf0,
                                              const ssock_tls_options *o,
                                              char *err, size_t errlen)
{
    STACK_OF(X509) *chain = NULL;
    EVP_PKEY *pk = NULL;
    SSL *scratch = NULL;
    char what[48];
    int rc = 0, r;

    if (o->extra_cert_count == 0)
        return 0;
    c->extra = calloc(o->extra_cert_count, sizeof *c->extra);
    scratch = c->extra != NULL ? SSL_new(c->ctx) : NULL;
    if (scratch == NULL) {
        os_errf(err, errlen, "out of memory");
        rc = SSOCK_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < o->extra_cert_count; i++) {
        const ssock_tls_cert *src = &o->extra_certs[i];
        struct os_pair *p = &c->extra[i];

        rc = os_load_pair(&chain, &pk, i + 1, src, o, err, errlen);
        if (rc != 0)
            goto out;
        p->leaf = sk_X509_shift(chain); /* the rest stays in order */
        p->rest = chain;
        p->pk = pk;
        chain = NULL;
        pk = NULL;
        c->nextra = i + 1;
        SSL_certs_clear(scratch);
        if (SSL_use_cert_and_key(scratch, p->leaf, p->pk, p->rest, 1) != 1) {
            os_errf(
                err, errlen, "%s '%s' refused: ",
                ssock__tls_pair_what(what, sizeof what, i + 1, "certificate"),
                label(src->cert_file));
            os_drain(err, errlen, "unknown reason");
            rc = SSOCK_ETLSCONFIG;
            goto out;
        }
    }
    for (size_t p = 0; p <= c->nextra; p++) {
        r = os_add_names(&c->sni, p, p == 0 ? leaf0 : c->extra[p - 1].leaf);
        if (r < 0) {
            os_errf(err, errlen, "out of memory");
            rc = r;
            goto out;
        }
        if (r == 0 && p > 0)
            os_append(err, errlen,
                      "%s%s '%s' has no usable DNS name (subjectAltName or "
                      "CN): SNI never selects it",
                      err[0] != '\0' ? "\n" : "",
                      ssock__tls_pair_what(what, sizeof what, p, "certificate"),
                      label(o->extra_certs[p - 1].cert_file));
    }
out:
    SSL_free(scratch);
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(pk);
    ERR_clear_error();
    return rc;
}

/* Our chain and key into the SSL_CTX (security level checks happen here). */
static SSOCK__TLS_NODISCARD int
os_step_own_cert(struct os_cfg *c, STACK_OF(X509) * chain, EVP_PKEY *pk,
                 const ssock_tls_options *o, char *err, size_t errlen)
{
    int i;

    if (SSL_CTX_use_certificate(c->ctx, sk_X509_value(chain, 0)) != 1) {
        os_errf(err, errlen, "certificate '%s' refused: ", label(o->cert_file));
        os_drain(err, errlen, "unknown reason");
        return SSOCK_ETLSCONFIG;
    }
    for (i = 1; i < sk_X509_num(chain); i++) {
        if (SSL_CTX_add1_chain_cert(c->ctx, sk_X509_value(chain, i)) != 1) {
            os_errf(err, errlen, "certificate '%s' (#%d in chain) refused: ",
                    label(o->cert_file), i);
            os_drain(err, errlen, "unknown reason");
            return SSOCK_ETLSCONFIG;
        }
    }
    if (SSL_CTX_use_PrivateKey(c->ctx, pk) != 1 ||
        SSL_CTX_check_private_key(c->ctx) != 1) {
        os_errf(err, errlen, "key '%s' refused: ", label(o->key_file));
        os_drain(err, errlen, "unknown reason");
        return SSOCK_EKEYMISMATCH;
    }
    return 0;
}

/* The CA bundle: trust store for client certificates and the acceptable
 * CA list sent to clients (optional). */
static SSOCK__TLS_NODISCARD int os_step_ca(struct os_cfg *c,
                                           const ssock_tls_options *o,
                                           char *err, size_t errlen)
{
    STACK_OF(X509) *ca = NULL;
    X509_STORE *store = SSL_CTX_get_cert_store(c->ctx);
    int i, rc;

    if (o->ca_mem == NULL)
        return 0;
    rc =
        os_parse_crts(&ca, "CA", o->ca_file, o->ca_mem, o->ca_len, err, errlen);
    for (i = 0; rc == 0 && i < sk_X509_num(ca); i++) {
        X509 *x = sk_X509_value(ca, i);

        if (X509_STORE_add_cert(store, x) != 1 ||
            SSL_CTX_add_client_CA(c->ctx, x) != 1) {
            os_errf(err, errlen, "CA '%s' (#%d): ", label(o->ca_file), i);
            os_drain(err, errlen, "refused");
            rc = SSOCK_ETLSCONFIG;
        }
    }
    sk_X509_pop_free(ca, X509_free);
    if (rc == 0 && o->verify_client == SSOCK_TLS_VERIFY_NONE)
        os_append(err, errlen, "%sCA '%s' is unused: verify_client is none",
                  err[0] != '\0' ? "\n" : "", label(o->ca_file));
    return rc;
}

/* ALPN list (server's order). */
static SSOCK__TLS_NODISCARD int os_step_alpn(struct os_cfg *c,
                                             const ssock_tls_options *o,
                                             char *err, size_t errlen)
{
    if (o->alpn_count == 0)
        return 0;
    if (os_copy_alpn(c, o) != 0) {
        os_errf(err, errlen, "out of memory");
        return SSOCK_ENOMEM;
    }
    SSL_CTX_set_alpn_select_cb(c->ctx, os_alpn_cb, c);
    return 0;
}

static int os_config_new(const ssock_tls_options *o, void **bcfg, char *err,
                         size_t errlen)
{
    STACK_OF(X509) *chain = NULL;
    EVP_PKEY *pk = NULL;
    struct os_cfg *c = NULL;
    ssock_tls_cert pair0;
    int rc;

    *bcfg = NULL;
    err[0] = '\0';
    ERR_clear_error();
    pair0.cert_file = o->cert_file;
    pair0.cert_mem = o->cert_mem;
    pair0.cert_len = o->cert_len;
    pair0.key_file = o->key_file;
    pair0.key_mem = o->key_mem;
    pair0.key_len = o->key_len;
#if defined(OPENSSL_NO_TLS1_3)
    if (o->min_version == SSOCK_TLS_VERSION_1_3) {
        os_errf(err, errlen, "this OpenSSL is built without TLS 1.3");
        return SSOCK_EVERSION;
    }
#endif
    c = calloc(1, sizeof *c);
    if (c == NULL || os_bio_method() == NULL) {
        free(c);
        os_errf(err, errlen, "out of memory");
        return SSOCK_ENOMEM;
    }
    ssock__tls_sni_init(&c->sni);
    c->verify = o->verify_client;
    c->keylog = o->keylog;
    c->keylog_arg = o->keylog_arg;
    c->verify_peer = o->verify_peer;
    c->verify_peer_arg = o->verify_peer_arg;
    c->ctx = SSL_CTX_new(TLS_server_method());
    if (c->ctx == NULL) {
        os_errf(err, errlen, "SSL_CTX_new: ");
        os_drain(err, errlen, "failed");
        rc = SSOCK_ENOMEM;
        goto out;
    }
    rc = os_setup_ctx(c, o, err, errlen); /* versions, suites, verification */
    if (rc == 0)                          /* chain, key, key match, dates */
        rc = os_load_pair(&chain, &pk, 0, &pair0, o, err, errlen);
    if (rc == 0)
        rc = os_step_own_cert(c, chain, pk, o, err, errlen);
    if (rc == 0) /* the same for every extra pair, and the SNI names */
        rc = os_step_extra(c, sk_X509_value(chain, 0), o, err, errlen);
    if (rc == 0)
        rc = os_step_ca(c, o, err, errlen);
    if (rc == 0)
        rc = os_step_alpn(c, o, err, errlen);
    if (rc == 0) {
        *bcfg = c;
        c = NULL;
    }
out:
    EVP_PKEY_free(pk);
    sk_X509_pop_free(chain, X509_free);
    os_config_free(c);
    ERR_clear_error();
    return rc;
}

/* ------------------------------------------------------------------ */
/* Sessions                                                            */
/* ------------------------------------------------------------------ */

static int os_session_new(void *bcfg, const struct ssock__tls_io *io,
                          void **sessp)
{
    struct os_cfg *c = bcfg;
    struct os_sess *s;
    BIO *bio;

    *sessp = NULL;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return SSOCK_ENOMEM;
    s->cfg = c;
    s->io = *io;
    s->ssl = SSL_new(c->ctx);
    bio = s->ssl != NULL ? BIO_new(os_bio_method()) : NULL;
    if (bio == NULL) {
        SSL_free(s->ssl);
        free(s);
        ERR_clear_error();
        return SSOCK_ENOMEM;
    }
    BIO_set_data(bio, s);
    BIO_set_init(bio, 1);
    SSL_set_bio(s->ssl, bio, bio); /* the SSL owns the BIO now */
    SSL_set_app_data(s->ssl, s);
    SSL_set_accept_state(s->ssl);
    /* During the handshake, take whatever the client's flight has queued
     * in one recv() instead of a header and a body per record (about 16
     * system calls per handshake down to 5, as nginx does); turned off
     * when the handshake ends (os_handshake). */
    SSL_set_read_ahead(s->ssl, 1);
    *sessp = s;
    return 0;
}

/* Map a failed SSL_* call (r <= 0) to the table's codes, keeping the text. */
static int os_result(struct os_sess *s, int r)
{
    int e = SSL_get_error(s->ssl, r);
    char eb[128];
    long vr;

    switch (e) {
    case SSL_ERROR_WANT_READ:
        return SSOCK__TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return SSOCK__TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        s->close_notify = 1;
        (void)snprintf(s->err, sizeof s->err, "peer sent close_notify");
        ERR_clear_error();
        return SSOCK_EOF;
    default:
        break;
    }
    s->err[0] = '\0';
    if (s->hook_rejected) {
        (void)snprintf(s->err, sizeof s->err, "%s",
                       SSOCK__TLS_REJECTED_BY_HOOK);
        ERR_clear_error();
        return SSOCK_ETLS;
    }
    if (s->io_errno != 0) {
        os_errf(s->err, sizeof s->err, "transport error: %s",
                ssock__tls_errno_text(s->io_errno, eb, sizeof eb));
        ERR_clear_error();
        return -s->io_errno;
    }
    if (s->eof) {
        os_errf(s->err, sizeof s->err, "peer closed the connection");
        ERR_clear_error();
        return SSOCK_EOF;
    }
    os_drain(s->err, sizeof s->err, "TLS error");
    vr = SSL_get_verify_result(s->ssl);
    if (vr != X509_V_OK)
        os_append(s->err, sizeof s->err, "; client certificate: %s",
                  X509_verify_cert_error_string(vr));
    return SSOCK_ETLS;
}

static int os_handshake(void *p)
{
    struct os_sess *s = p;
    int r;

    if (s->hs_done)
        return 0;
    s->io_errno = 0;
    ERR_clear_error();
    r = SSL_do_handshake(s->ssl);
    if (r == 1) {
        s->hs_done = 1;
        /* From now on a read takes one record at a time, so bytes the
         * library holds are always decrypted ones (SSL_pending()), which
         * ssock_socket_pending() reports. Records read ahead with the
         * client's Finished are decrypted now, for the same reason. */
        SSL_set_read_ahead(s->ssl, 0);
        if (SSL_has_pending(s->ssl)) {
            unsigned char b;
            size_t got = 0;
            s->io_errno = 0;
            (void)SSL_peek_ex(s->ssl, &b, 1, &got);
            ERR_clear_error();
        }
        return 0;
    }
    return os_result(s, r);
}

static int os_read(void *p, void *buf, size_t len, size_t *n)
{
    struct os_sess *s = p;
    int r;

    *n = 0;
    if (len == 0)
        return 0;
    s->io_errno = 0;
    ERR_clear_error();
    r = SSL_read_ex(s->ssl, buf, len, n);
    if (r == 1 && *n > 0)
        return 0;
    *n = 0;
    r = os_result(s, r);
    /* OpenSSL 3 reports a transport EOF without close_notify as
     * SSL_R_UNEXPECTED_EOF_WHILE_READING (SSL_OP_IGNORE_UNEXPECTED_EOF is
     * not set): a possible truncation, not a clean end. */
    if (r == SSOCK_EOF && !s->close_notify) {
        (void)snprintf(s->err, sizeof s->err,
                       "peer closed the connection without close_notify "
                       "(possible truncation)");
        r = SSOCK_ETRUNCATED;
    }
    return r;
}

static int os_write(void *p, const void *buf, size_t len, size_t *n)
{
    struct os_sess *s = p;
    int r;

    *n = 0;
    if (len == 0)
        return 0;
    s->io_errno = 0;
    ERR_clear_error();
    r = SSL_write_ex(s->ssl, buf, len, n);
    if (r == 1 && *n > 0)
        return 0;
    *n = 0;
    return os_result(s, r);
}

static size_t os_pending(void *p)
{
    struct os_sess *s = p;
    int n = SSL_pending(s->ssl);

    return n > 0 ? (size_t)n : 0;
}

static int os_close_notify(void *p)
{
    struct os_sess *s = p;
    int r;

    s->io_errno = 0;
    ERR_clear_error();
    r = SSL_shutdown(s->ssl);
    if (r >= 0)
        return 0; /* 0: ours sent, the peer's not awaited; 1: both */
    r = os_result(s, r);
    if (r == SSOCK__TLS_WANT_READ) /* ours is out; we do not wait for theirs */
        return 0;
    return r == SSOCK_EOF ? SSOCK_ETLS : r;
}

static void os_session_free(void *p)
{
    struct os_sess *s = p;

    if (s == NULL)
        return;
    SSL_free(s->ssl);
    free(s->sni);
    free(s->subject);
    os_chain_free(s->peer_der, s->peer_len, s->peer_count);
    free(s);
}

static char *os_subject(X509 *x)
{
    unsigned long flags = (ASN1_STRFLGS_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) |
                          XN_FLAG_SEP_CPLUS_SPC | XN_FLAG_FN_SN;
    BIO *m = BIO_new(BIO_s_mem());
    char *out = NULL, *data;
    long n;

    if (m == NULL)
        return NULL;
    if (X509_NAME_print_ex(m, X509_get_subject_name(x), 0, flags) >= 0) {
        n = BIO_get_mem_data(m, &data);
        if (n >= 0 && (out = malloc((size_t)n + 1)) != NULL) {
            memcpy(out, data, (size_t)n);
            out[n] = '\0';
        }
    }
    BIO_free(m);
    ERR_clear_error();
    return out;
}

/* OpenSSL's group NID as the IANA name (ssock's groups, and X448). */
static const char *os_group_name(int nid)
{
    switch (nid) {
    case NID_X25519:
        return ssock__tls_group_name(0x001d);
    case NID_X448:
        return ssock__tls_group_name(0x001e);
    case NID_X9_62_prime256v1:
        return ssock__tls_group_name(0x0017);
    case NID_secp384r1:
        return ssock__tls_group_name(0x0018);
    case NID_secp521r1:
        return ssock__tls_group_name(0x0019);
    default:
        return NULL;
    }
}

static void os_info(void *p, struct ssock__tls_info *out)
{
    struct os_sess *s = p;
    const SSL_CIPHER *cs;

    memset(out, 0, sizeof *out);
    out->sni = s->sni;
    if (!s->hs_done)
        return;
    if (!s->info_ready) {
        const unsigned char *a = NULL;
        unsigned int alen = 0;
        X509 *peer;

        s->info_ready = 1;
        SSL_get0_alpn_selected(s->ssl, &a, &alen);
        if (a != NULL && alen > 0 && alen < sizeof s->alpn) {
            memcpy(s->alpn, a, alen);
            s->alpn[alen] = '\0';
        }
        peer = SSL_get0_peer_certificate(s->ssl);
        if (peer != NULL && s->cfg->verify != SSOCK_TLS_VERIFY_NONE &&
            SSL_get_verify_result(s->ssl) == X509_V_OK) {
            s->subject = os_subject(peer);
            /* on failure (no memory) the chain is simply absent */
            (void)os_chain_der(peer, SSL_get_peer_cert_chain(s->ssl),
                               &s->peer_der, &s->peer_len, &s->peer_count);
        }
    }
    out->version = SSL_get_version(s->ssl);
    cs = SSL_get_current_cipher(s->ssl);
    out->cipher = cs != NULL ? SSL_CIPHER_standard_name(cs) : NULL;
    out->group = os_group_name(SSL_get_negotiated_group(s->ssl));
    out->alpn = s->alpn[0] != '\0' ? s->alpn : NULL;
    out->peer_subject = s->subject;
    out->peer_count = s->peer_count;
    out->peer_der = (const unsigned char *const *)s->peer_der;
    out->peer_len = s->peer_len;
}

static const char *os_session_error(void *p)
{
    struct os_sess *s = p;

    return s->err;
}

/*
 * No set_rng (ssock__tls_config_set_test_rng gives SSOCK_ENOBACKEND):
 * OpenSSL 3 takes random numbers from the DRBGs of the SSL_CTX's library
 * context, and the public 3.0 API cannot swap them for one SSL_CTX. The
 * only ways are process-wide (the deprecated RAND_METHOD, which the fuzz
 * target installs: fuzz/tls_openssl_rng.h) or per OSSL_LIB_CTX:
 * RAND_set_DRBG_type() to TEST-RAND works only before the context's first
 * draw, and SSL_CTX_new_ex() already draws (ticket keys) in config_new,
 * so every config would need its own OSSL_LIB_CTX with its own default
 * provider, keys and certificates read into it, and the RNG chosen at
 * config_new; and 3.0's TEST-RAND serves a fixed buffer per (per-thread)
 * DRBG, not a callback. Not worth that cost in production code.
 */
const struct ssock__tls_backend ssock__tls_openssl = {
    .name = "openssl",
    .config_new = os_config_new,
    .config_free = os_config_free,
    .session_new = os_session_new,
    .handshake = os_handshake,
    .read = os_read,
    .write = os_write,
    .pending = os_pending,
    .close_notify = os_close_notify,
    .session_free = os_session_free,
    .info = os_info,
    .session_error = os_session_error,
};
