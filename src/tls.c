/*
 * tls.c — backend-neutral TLS configuration front: options, validation,
 * reading files (pair 0 and the SNI pairs), reference counting, backend
 * selection, and the SNI name rules both backends share
 * (ssock__tls_sni_*: which pair a server name picks). Everything that
 * touches mbedTLS or OpenSSL is in tls_mbedtls.c / tls_openssl.c.
 */
#include "tls_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Larger certificate / key / CA files are refused (SSOCK_EFILE). */
#define TLS_MAX_FILE (16u * 1024u * 1024u)
/* An ALPN extension carries at most 2^16-1 bytes of length-prefixed names. */
#define TLS_MAX_ALPN_WIRE 65535u

struct ssock_tls_config {
    atomic_int refs;
    int backend_id;
    const struct ssock__tls_backend *be;
    void *bcfg;
    int handshake_timeout_ms;
    int max_handshakes;
    int max_per_source; /* effective, 1..max_handshakes */
    int source_prefix6; /* effective, 1..128 */
    char *message;      /* warnings, "" when none */
};

/* One input after reading: a private copy followed by a NUL byte. */
struct tls_blob {
    unsigned char *data;
    size_t len;
};

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    (void)vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Thread-safe strerror for both the GNU and the XSI strerror_r. */
const char *ssock__tls_errno_text(int e, char *buf, size_t len)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(e, buf, len);
#else
    if (strerror_r(e, buf, len) != 0)
        (void)snprintf(buf, len, "errno %d", e);
    return buf;
#endif
}

/* Overwrite memory that held key material (not optimised away). */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;

    while (n-- > 0)
        *v++ = 0;
}

static void blob_free(struct tls_blob *b, int secret)
{
    if (b->data != NULL) {
        if (secret)
            wipe(b->data, b->len);
        free(b->data);
    }
    b->data = NULL;
    b->len = 0;
}

static SSOCK__TLS_NODISCARD int blob_from_mem(struct tls_blob *b,
                                              const void *mem, size_t len,
                                              char *err, size_t errlen)
{
    b->data = malloc(len + 1);
    if (b->data == NULL) {
        errf(err, errlen, "out of memory");
        return SSOCK_ENOMEM;
    }
    memcpy(b->data, mem, len);
    b->data[len] = 0;
    b->len = len;
    return 0;
}

static SSOCK__TLS_NODISCARD int blob_from_file(struct tls_blob *b,
                                               const char *what,
                                               const char *path, char *err,
                                               size_t errlen)
{
    char ebuf[128];
    struct stat st;
    size_t cap, got = 0;
    int fd, rc = 0, e = 0;

    /* O_NONBLOCK: opening a FIFO with no writer (or some devices) would
     * block; the type is checked with fstat() before anything is read. */
    do
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        e = errno;
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        e = errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        const char *kind = S_ISFIFO(st.st_mode)   ? " (a FIFO)"
                           : S_ISCHR(st.st_mode)  ? " (a character device)"
                           : S_ISBLK(st.st_mode)  ? " (a block device)"
                           : S_ISSOCK(st.st_mode) ? " (a socket)"
                                                  : "";

        if (S_ISDIR(st.st_mode)) {
            e = EISDIR;
            goto out;
        }
        errf(err, errlen, "cannot read %s file '%s': not a regular file%s",
             what, path, kind);
        rc = SSOCK_EFILE;
        goto out;
    }
    /* A regular file: back to blocking reads (O_NONBLOCK has no effect on
     * regular files on Linux, but be exact). */
    {
        int fl = fcntl(fd, F_GETFL);

        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
            e = errno;
            goto out;
        }
    }
    if ((unsigned long long)st.st_size > TLS_MAX_FILE) {
        e = EFBIG;
        goto out;
    }
    cap = (size_t)st.st_size;
    b->data = malloc(cap + 1);
    if (b->data == NULL) {
        errf(err, errlen, "out of memory");
        rc = SSOCK_ENOMEM;
        goto out;
    }
    /* Read what fstat announced; a file that grows meanwhile is cut there. */
    while (got < cap) {
        ssize_t n = read(fd, b->data + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            e = errno;
            goto out;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    b->data[got] = 0;
    b->len = got;
out:
    if (fd >= 0)
        (void)close(fd);
    if (e != 0) {
        errf(err, errlen, "cannot read %s file '%s': %s", what, path,
             ssock__tls_errno_text(e, ebuf, sizeof ebuf));
        rc = SSOCK_EFILE;
    }
    if (rc != 0)
        blob_free(b, 1);
    return rc;
}

/* Check that exactly one source is given (unless optional) and load it. */
static SSOCK__TLS_NODISCARD int blob_load(struct tls_blob *b, const char *what,
                                          const char *field, const char *file,
                                          const void *mem, size_t len,
                                          int required, char *err,
                                          size_t errlen)
{
    if (file != NULL && (mem != NULL || len != 0)) {
        errf(err, errlen, "%s: give a file or memory, not both", what);
        return SSOCK_ETLSCONFIG;
    }
    if (file != NULL) {
        if (file[0] == '\0') {
            errf(err, errlen, "%s: file name is empty", what);
            return SSOCK_ETLSCONFIG;
        }
        return blob_from_file(b, what, file, err, errlen);
    }
    if (mem == NULL && len == 0) {
        if (!required)
            return 0;
        errf(err, errlen, "%s is required (set %s_file or %s_mem)", what, field,
             field);
        return SSOCK_ETLSCONFIG;
    }
    if (mem == NULL || len == 0) {
        errf(err, errlen, "%s: memory source needs a pointer and a length > 0",
             what);
        return SSOCK_ETLSCONFIG;
    }
    return blob_from_mem(b, mem, len, err, errlen);
}

/* ------------------------------------------------------------------ */
/* SNI: certificate names and the choice of a pair                    */
/* ------------------------------------------------------------------ */

/* Longest server name compared (a DNS name is at most 253 characters). */
#define TLS_SNI_MAX 255u

/* ASCII only: no locale (bytes >= 0x80, IDNA's UTF-8, are left alone). */
static unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

void ssock__tls_sni_init(struct ssock__tls_sni *t)
{
    t->v = NULL;
    t->count = 0;
    t->cap = 0;
}

void ssock__tls_sni_free(struct ssock__tls_sni *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->count; i++)
        free(t->v[i].name);
    free(t->v);
    ssock__tls_sni_init(t);
}

/* Labels of n bytes: none empty (no leading dot, no "..", not empty). */
static int labels_ok(const unsigned char *n, size_t len)
{
    size_t label = 0;

    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (n[i] == '.') {
            if (label == 0)
                return 0;
            label = 0;
        } else {
            label++;
        }
    }
    return label > 0;
}

int ssock__tls_sni_add(struct ssock__tls_sni *t, size_t pair, const void *name,
                       size_t len)
{
    const unsigned char *n = name;
    struct ssock__tls_sni_name *e;
    int wildcard = 0;
    size_t dots = 0;

    if (t == NULL || n == NULL)
        return 0;
    if (len > 0 && n[len - 1] == '.')
        len--;
    if (len == 0 || len > TLS_SNI_MAX || memchr(n, 0, len) != NULL ||
        !labels_ok(n, len))
        return 0;
    if (len >= 2 && n[0] == '*' && n[1] == '.') {
        wildcard = 1;
        n += 2;
        len -= 2;
        for (size_t i = 0; i < len; i++)
            dots += n[i] == '.';
        if (dots < 1) /* "*.com": at least two labels after the "*" */
            return 0;
    }
    if (memchr(n, '*', len) != NULL) /* "*" anywhere else: never matches */
        return 0;
    if (t->count == t->cap) {
        size_t cap = t->cap == 0 ? 8 : t->cap * 2;
        struct ssock__tls_sni_name *v = realloc(t->v, cap * sizeof *v);

        if (v == NULL)
            return SSOCK_ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    e = &t->v[t->count];
    e->name = malloc(len + 1);
    if (e->name == NULL)
        return SSOCK_ENOMEM;
    for (size_t i = 0; i < len; i++)
        e->name[i] = (char)ascii_lower(n[i]);
    e->name[len] = '\0';
    e->len = len;
    e->pair = pair;
    e->wildcard = wildcard;
    t->count++;
    return 1;
}

size_t ssock__tls_sni_pick(const struct ssock__tls_sni *t, const char *name,
                           size_t len)
{
    char low[TLS_SNI_MAX]; /* the name in lower case, compared with memcmp */
    const char *rest;
    size_t first = 0, rest_len, best = 0;
    int have_wild = 0;

    if (t == NULL || name == NULL)
        return 0;
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > TLS_SNI_MAX || memchr(name, 0, len) != NULL)
        return 0;
    for (size_t i = 0; i < len; i++)
        low[i] = (char)ascii_lower((unsigned char)name[i]);
    /* the left-most label, for wildcards: non-empty, then a dot */
    while (first < len && low[first] != '.')
        first++;
    rest = first < len ? low + first + 1 : NULL;
    rest_len = first < len ? len - first - 1 : 0;
    for (size_t i = 0; i < t->count; i++) {
        const struct ssock__tls_sni_name *e = &t->v[i];

        if (!e->wildcard) {
            if (e->len == len && memcmp(low, e->name, len) == 0)
                return e->pair; /* names are in pair order: the first */
        } else if (!have_wild && first > 0 && rest != NULL &&
                   e->len == rest_len && memcmp(rest, e->name, rest_len) == 0) {
            have_wild = 1;
            best = e->pair;
        }
    }
    return best;
}

const char *ssock__tls_pair_what(char *buf, size_t len, size_t pair,
                                 const char *what)
{
    if (pair == 0)
        (void)snprintf(buf, len, "%s", what);
    else
        (void)snprintf(buf, len, "extra_certs[%zu] %s", pair - 1, what);
    return buf;
}

/* ------------------------------------------------------------------ */

const struct ssock__tls_backend *ssock__tls_backend_get(int backend)
{
    switch (backend) {
    case SSOCK_TLS_BACKEND_DEFAULT:
#if SSOCK_HAVE_MBEDTLS
        return &ssock__tls_mbedtls;
#elif SSOCK_HAVE_OPENSSL
        return &ssock__tls_openssl;
#else
        return NULL;
#endif
    case SSOCK_TLS_BACKEND_MBEDTLS:
#if SSOCK_HAVE_MBEDTLS
        return &ssock__tls_mbedtls;
#else
        return NULL;
#endif
    case SSOCK_TLS_BACKEND_OPENSSL:
#if SSOCK_HAVE_OPENSSL
        return &ssock__tls_openssl;
#else
        return NULL;
#endif
    default:
        return NULL;
    }
}

static int resolve_backend_id(int backend)
{
    if (backend != SSOCK_TLS_BACKEND_DEFAULT)
        return backend;
#if SSOCK_HAVE_MBEDTLS
    return SSOCK_TLS_BACKEND_MBEDTLS;
#elif SSOCK_HAVE_OPENSSL
    return SSOCK_TLS_BACKEND_OPENSSL;
#else
    return SSOCK_TLS_BACKEND_DEFAULT;
#endif
}

void ssock_tls_options_init_sized(ssock_tls_options *opts, size_t size)
{
    ssock_tls_options d;

    if (opts == NULL)
        return;
    /* A caller built against an older header has a shorter struct: fill
     * only what it has; a newer one gets its extra fields zeroed. */
    memset(&d, 0, sizeof d);
    d.struct_size = size;
    d.backend = SSOCK_TLS_BACKEND_DEFAULT;
    d.verify_client = SSOCK_TLS_VERIFY_NONE;
    d.min_version = SSOCK_TLS_VERSION_1_2;
    d.handshake_timeout_ms = SSOCK_TLS_DEFAULT_HANDSHAKE_TIMEOUT_MS;
    d.max_handshakes = SSOCK_TLS_DEFAULT_MAX_HANDSHAKES;
    if (size >= sizeof d) {
        memset(opts, 0, size);
        memcpy(opts, &d, sizeof d);
    } else if (size >= sizeof d.struct_size) {
        memcpy(opts, &d, size);
    }
}

/* The caller's options at this library's size (see ssock_server_options'
 * copy_options() in server.c): what the caller's struct has, defaults for
 * the rest; SSOCK_EINVAL for a struct not filled by the init function,
 * SSOCK_ENOTSUP for a set field this library does not know. */
static SSOCK__TLS_NODISCARD int copy_options(ssock_tls_options *o,
                                             const ssock_tls_options *in,
                                             char *err, size_t errlen)
{
    size_t size = in->struct_size;
    const size_t first = offsetof(ssock_tls_options, keylog);

    if (size < first) {
        errf(err, errlen,
             "options not filled by ssock_tls_options_init() (struct_size "
             "%zu)",
             size);
        return SSOCK_EINVAL;
    }
    ssock_tls_options_init_sized(o, sizeof *o);
    if (size > sizeof *o) {
        const unsigned char *extra = (const unsigned char *)in + sizeof *o;

        for (size_t i = 0; i < size - sizeof *o; i++) {
            if (extra[i] != 0) {
                errf(err, errlen,
                     "options set a field unknown to ssock %s (byte %zu of "
                     "%zu)",
                     SSOCK_VERSION_STRING, sizeof *o + i, size);
                return SSOCK_ENOTSUP;
            }
        }
        size = sizeof *o;
    }
    memcpy(o, in, size);
    o->struct_size = sizeof *o;
    return 0;
}

const char *ssock__tls_group_name(unsigned id)
{
    switch (id) {
    case 0x0017:
        return "secp256r1";
    case 0x0018:
        return "secp384r1";
    case 0x0019:
        return "secp521r1";
    case 0x001d:
        return "x25519";
    case 0x001e:
        return "x448";
    default:
        return NULL;
    }
}

static SSOCK__TLS_NODISCARD int check_options(const ssock_tls_options *o,
                                              char *err, size_t errlen)
{
    size_t i, wire = 0;

    if (ssock__tls_backend_get(o->backend) == NULL) {
        if (ssock_tls_backend_name(o->backend) == NULL)
            errf(err, errlen, "unknown TLS backend id %d", o->backend);
        else
            errf(err, errlen, "TLS backend '%s' is not built into this library",
                 ssock_tls_backend_name(o->backend));
        return SSOCK_ENOBACKEND;
    }
    if (o->handshake_timeout_ms <= 0) {
        errf(err, errlen, "handshake_timeout_ms must be > 0 (got %d)",
             o->handshake_timeout_ms);
        return SSOCK_EBADTIMEOUT;
    }
    if (o->max_handshakes <= 0) {
        errf(err, errlen, "max_handshakes must be > 0 (got %d)",
             o->max_handshakes);
        return SSOCK_ETLSCONFIG;
    }
    if (o->max_handshakes > SSOCK_TLS_MAX_HANDSHAKES_LIMIT) {
        errf(err, errlen, "max_handshakes must be <= %d (got %d)",
             SSOCK_TLS_MAX_HANDSHAKES_LIMIT, o->max_handshakes);
        return SSOCK_ETLSCONFIG;
    }
    if (o->max_handshakes_per_source < 0) {
        errf(err, errlen, "max_handshakes_per_source must be >= 0 (got %d)",
             o->max_handshakes_per_source);
        return SSOCK_ETLSCONFIG;
    }
    if (o->source_prefix_v6 < 0 || o->source_prefix_v6 > 128) {
        errf(err, errlen, "source_prefix_v6 must be 0..128 (got %d)",
             o->source_prefix_v6);
        return SSOCK_ETLSCONFIG;
    }
    if (o->min_version != SSOCK_TLS_VERSION_1_2 &&
        o->min_version != SSOCK_TLS_VERSION_1_3) {
        errf(err, errlen,
             "min_version 0x%04x unknown (use SSOCK_TLS_VERSION_1_2 or _1_3)",
             (unsigned)o->min_version);
        return SSOCK_ETLSCONFIG;
    }
    if (o->verify_client != SSOCK_TLS_VERIFY_NONE &&
        o->verify_client != SSOCK_TLS_VERIFY_OPTIONAL &&
        o->verify_client != SSOCK_TLS_VERIFY_REQUIRED) {
        errf(err, errlen, "verify_client %d unknown", o->verify_client);
        return SSOCK_ETLSCONFIG;
    }
    if (o->verify_client != SSOCK_TLS_VERIFY_NONE && o->ca_file == NULL &&
        o->ca_mem == NULL) {
        errf(err, errlen, "verify_client %s needs a CA (ca_file or ca_mem)",
             o->verify_client == SSOCK_TLS_VERIFY_REQUIRED ? "required"
                                                           : "optional");
        return SSOCK_ETLSCONFIG;
    }
    if (o->extra_cert_count > 0 && o->extra_certs == NULL) {
        errf(err, errlen, "extra_certs is NULL but extra_cert_count is %zu",
             o->extra_cert_count);
        return SSOCK_ETLSCONFIG;
    }
    if (o->extra_cert_count > SSOCK_TLS_MAX_EXTRA_CERTS) {
        errf(err, errlen, "extra_cert_count must be <= %d (got %zu)",
             SSOCK_TLS_MAX_EXTRA_CERTS, o->extra_cert_count);
        return SSOCK_ETLSCONFIG;
    }
    if (o->alpn_count > 0 && o->alpn == NULL) {
        errf(err, errlen, "alpn is NULL but alpn_count is %zu", o->alpn_count);
        return SSOCK_ETLSCONFIG;
    }
    for (i = 0; i < o->alpn_count; i++) {
        size_t n;

        if (o->alpn[i] == NULL) {
            errf(err, errlen, "alpn[%zu] is NULL", i);
            return SSOCK_ETLSCONFIG;
        }
        n = strlen(o->alpn[i]);
        if (n == 0 || n > 255) {
            errf(err, errlen,
                 "alpn[%zu] is %zu bytes; each ALPN protocol must be 1..255 "
                 "bytes",
                 i, n);
            return SSOCK_ETLSCONFIG;
        }
        wire += n + 1;
        if (wire > TLS_MAX_ALPN_WIRE - 2) {
            errf(err, errlen, "ALPN list too long for the TLS extension");
            return SSOCK_ETLSCONFIG;
        }
    }
    return 0;
}

/* The extra pairs (SNI), read like pair 0: blobs[2 * i] and [2 * i + 1]
 * are extra_certs[i]'s certificate and key; `pairs` gets the same array
 * with memory sources only (the *_file names kept for messages). */
static SSOCK__TLS_NODISCARD int load_extra(const ssock_tls_options *o,
                                           struct tls_blob **blobsp,
                                           ssock_tls_cert **pairsp, char *err,
                                           size_t errlen)
{
    size_t n = o->extra_cert_count;
    struct tls_blob *blobs;
    ssock_tls_cert *pairs;
    int rc = 0;

    *blobsp = NULL;
    *pairsp = NULL;
    if (n == 0)
        return 0;
    blobs = calloc(2 * n, sizeof *blobs);
    pairs = calloc(n, sizeof *pairs);
    *blobsp = blobs;
    *pairsp = pairs;
    if (blobs == NULL || pairs == NULL) {
        errf(err, errlen, "out of memory");
        return SSOCK_ENOMEM;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        const ssock_tls_cert *in = &o->extra_certs[i];
        char cw[48], kw[48];

        (void)ssock__tls_pair_what(cw, sizeof cw, i + 1, "certificate");
        (void)ssock__tls_pair_what(kw, sizeof kw, i + 1, "key");
        rc = blob_load(&blobs[2 * i], cw, "cert", in->cert_file, in->cert_mem,
                       in->cert_len, 1, err, errlen);
        if (rc == 0)
            rc = blob_load(&blobs[2 * i + 1], kw, "key", in->key_file,
                           in->key_mem, in->key_len, 1, err, errlen);
        pairs[i].cert_file = in->cert_file;
        pairs[i].cert_mem = blobs[2 * i].data;
        pairs[i].cert_len = blobs[2 * i].len;
        pairs[i].key_file = in->key_file;
        pairs[i].key_mem = blobs[2 * i + 1].data;
        pairs[i].key_len = blobs[2 * i + 1].len;
    }
    return rc;
}

static void free_extra(struct tls_blob *blobs, ssock_tls_cert *pairs, size_t n)
{
    for (size_t i = 0; blobs != NULL && i < n; i++) {
        blob_free(&blobs[2 * i], 0);
        blob_free(&blobs[2 * i + 1], 1);
    }
    free(blobs);
    free(pairs);
}

int ssock_tls_config_new(ssock_tls_config **out, const ssock_tls_options *opts,
                         char *errbuf, size_t errlen)
{
    struct tls_blob cert = {NULL, 0}, key = {NULL, 0}, ca = {NULL, 0};
    struct tls_blob *extra_blobs = NULL;
    ssock_tls_cert *extra = NULL;
    ssock_tls_options in, o;
    ssock_tls_config *cfg = NULL;
    char *msg = NULL;
    size_t msglen = SSOCK_TLS_ERRBUF_SIZE, nextra = 0;
    int rc;

    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if (out != NULL)
        *out = NULL;
    if (out == NULL || opts == NULL) {
        errf(errbuf, errlen, "%s is NULL", out == NULL ? "out" : "opts");
        return SSOCK_EINVAL;
    }
    /* Backends always get a real buffer; copied to errbuf at the end. */
    msg = calloc(1, msglen);
    if (msg == NULL) {
        errf(errbuf, errlen, "out of memory");
        return SSOCK_ENOMEM;
    }
    rc = copy_options(&in, opts, msg, msglen);
    if (rc != 0)
        goto out;
    opts = &in;
    rc = check_options(opts, msg, msglen);
    if (rc != 0)
        goto out;
    rc = blob_load(&cert, "certificate", "cert", opts->cert_file,
                   opts->cert_mem, opts->cert_len, 1, msg, msglen);
    if (rc != 0)
        goto out;
    rc = blob_load(&key, "key", "key", opts->key_file, opts->key_mem,
                   opts->key_len, 1, msg, msglen);
    if (rc != 0)
        goto out;
    rc = blob_load(&ca, "CA", "ca", opts->ca_file, opts->ca_mem, opts->ca_len,
                   0, msg, msglen);
    if (rc != 0)
        goto out;
    nextra = opts->extra_cert_count;
    rc = load_extra(opts, &extra_blobs, &extra, msg, msglen);
    if (rc != 0)
        goto out;

    cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL) {
        errf(msg, msglen, "out of memory");
        rc = SSOCK_ENOMEM;
        goto out;
    }
    atomic_init(&cfg->refs, 1);
    cfg->backend_id = resolve_backend_id(opts->backend);
    cfg->be = ssock__tls_backend_get(cfg->backend_id);
    cfg->handshake_timeout_ms = opts->handshake_timeout_ms;
    cfg->max_handshakes = opts->max_handshakes;
    cfg->max_per_source = opts->max_handshakes_per_source != 0
                              ? opts->max_handshakes_per_source
                              : SSOCK_TLS_DEFAULT_MAX_HANDSHAKES_PER_SOURCE;
    if (cfg->max_per_source > cfg->max_handshakes)
        cfg->max_per_source = cfg->max_handshakes;
    cfg->source_prefix6 = opts->source_prefix_v6 != 0
                              ? opts->source_prefix_v6
                              : SSOCK_TLS_DEFAULT_SOURCE_PREFIX_V6;

    o = *opts;
    o.backend = cfg->backend_id;
    o.cert_mem = cert.data;
    o.cert_len = cert.len;
    o.key_mem = key.data;
    o.key_len = key.len;
    o.ca_mem = ca.data;
    o.ca_len = ca.len;
    o.extra_certs = extra;
    rc = cfg->be->config_new(&o, &cfg->bcfg, msg, msglen);
    if (rc != 0) {
        if (msg[0] == '\0')
            errf(msg, msglen, "%s backend failed (%d)", cfg->be->name, rc);
        goto out;
    }
    if (opts->verify_peer != NULL &&
        opts->verify_client == SSOCK_TLS_VERIFY_NONE) {
        size_t used = strlen(msg);

        errf(msg + used, msglen - used,
             "%sverify_peer is unused: verify_client is none",
             used > 0 ? "\n" : "");
    }
    cfg->message = msg;
    msg = NULL;
    *out = cfg;
    cfg = NULL;
out:
    if (errbuf != NULL && errlen > 0) {
        const char *text = (*out != NULL) ? (*out)->message : msg;
        errf(errbuf, errlen, "%s", text != NULL ? text : "");
    }
    blob_free(&cert, 0);
    blob_free(&key, 1);
    blob_free(&ca, 0);
    free_extra(extra_blobs, extra, nextra);
    free(msg);
    free(cfg); /* only reached on failure, before the backend succeeded */
    return rc;
}

const char *ssock_tls_config_message(const ssock_tls_config *cfg)
{
    return cfg != NULL ? cfg->message : NULL;
}

int ssock_tls_config_backend(const ssock_tls_config *cfg)
{
    return cfg != NULL ? cfg->backend_id : SSOCK_EINVAL;
}

ssock_tls_config *ssock__tls_config_ref(const ssock_tls_config *cfg)
{
    ssock_tls_config *c = (ssock_tls_config *)(uintptr_t)cfg;

    if (c != NULL)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void ssock__tls_config_unref(ssock_tls_config *cfg)
{
    if (cfg == NULL)
        return;
    if (atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) != 1)
        return;
    cfg->be->config_free(cfg->bcfg);
    free(cfg->message);
    free(cfg);
}

void ssock_tls_config_free(ssock_tls_config *cfg)
{
    ssock__tls_config_unref(cfg);
}

const struct ssock__tls_backend *
ssock__tls_config_backend(const ssock_tls_config *cfg)
{
    return cfg != NULL ? cfg->be : NULL;
}

void *ssock__tls_config_bcfg(const ssock_tls_config *cfg)
{
    return cfg != NULL ? cfg->bcfg : NULL;
}

int ssock__tls_config_handshake_timeout(const ssock_tls_config *cfg)
{
    return cfg != NULL ? cfg->handshake_timeout_ms : SSOCK_EINVAL;
}

int ssock__tls_config_max_handshakes(const ssock_tls_config *cfg)
{
    return cfg != NULL ? cfg->max_handshakes : SSOCK_EINVAL;
}

int ssock__tls_config_max_per_source(const ssock_tls_config *cfg)
{
    return cfg != NULL ? cfg->max_per_source : SSOCK_EINVAL;
}

int ssock__tls_config_source_prefix6(const ssock_tls_config *cfg)
{
    return cfg != NULL ? cfg->source_prefix6 : SSOCK_EINVAL;
}

int ssock__tls_config_set_test_rng(ssock_tls_config *cfg,
                                   int (*f_rng)(void *, unsigned char *,
                                                size_t),
                                   void *p_rng)
{
    if (cfg == NULL || f_rng == NULL)
        return SSOCK_EINVAL;
    /* Only the creator's reference: no server, hence no session. */
    if (atomic_load_explicit(&cfg->refs, memory_order_acquire) != 1)
        return SSOCK_EINVAL;
    if (cfg->be->set_rng == NULL)
        return SSOCK_ENOBACKEND;
    return cfg->be->set_rng(cfg->bcfg, f_rng, p_rng);
}

int ssock_tls_backend_available(int backend)
{
    return ssock__tls_backend_get(backend) != NULL;
}

const char *ssock_tls_backend_name(int backend)
{
    switch (backend) {
    case SSOCK_TLS_BACKEND_DEFAULT: {
        const struct ssock__tls_backend *be = ssock__tls_backend_get(backend);
        return be != NULL ? be->name : "none";
    }
    case SSOCK_TLS_BACKEND_MBEDTLS:
        return "mbedtls";
    case SSOCK_TLS_BACKEND_OPENSSL:
        return "openssl";
    default:
        return NULL;
    }
}

int ssock_tls_backend_from_name(const char *name)
{
    if (name == NULL)
        return SSOCK_EINVAL;
    if (strcasecmp(name, "default") == 0)
        return SSOCK_TLS_BACKEND_DEFAULT;
    if (strcasecmp(name, "mbedtls") == 0)
        return SSOCK_TLS_BACKEND_MBEDTLS;
    if (strcasecmp(name, "openssl") == 0)
        return SSOCK_TLS_BACKEND_OPENSSL;
    return SSOCK_ENOBACKEND;
}
