/* In-test TLS client on libssl: see tls_client.h. */
#include "tls_client.h"

#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define SSLP(c) ((SSL *)(c)->ssl)

/* ---- transport BIO: send(MSG_NOSIGNAL) / recv ---------------------- */

static int bio_write_cb(BIO *b, const char *buf, int len)
{
    tc_conn *c = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    do {
        n = send(c->fd, buf, (size_t)len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n >= 0)
        return (int)n;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        BIO_set_retry_write(b);
        return -1;
    }
    c->io_errno = errno;
    return -1;
}

static int bio_read_cb(BIO *b, char *buf, int len)
{
    tc_conn *c = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    do {
        n = recv(c->fd, buf, (size_t)len, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0)
        return (int)n;
    if (n == 0) {
        c->eof = 1;
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        BIO_set_retry_read(b);
        return -1;
    }
    c->io_errno = errno;
    return -1;
}

static long bio_ctrl_cb(BIO *b, int cmd, long num, void *ptr)
{
    tc_conn *c = BIO_get_data(b);

    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF:
        return c != NULL && c->eof;
    default:
        return 0;
    }
}

/* ---- helpers ------------------------------------------------------- */

static void set_err(tc_conn *c, const char *what)
{
    unsigned long e;
    size_t used;

    snprintf(c->err, sizeof c->err, "%s", what);
    if (c->io_errno != 0) {
        used = strlen(c->err);
        snprintf(c->err + used, sizeof c->err - used, " [%s]",
                 strerror(c->io_errno));
    }
    while ((e = ERR_get_error()) != 0) {
        char one[200];

        ERR_error_string_n(e, one, sizeof one);
        used = strlen(c->err);
        snprintf(c->err + used, sizeof c->err - used, "; %s", one);
    }
}

/* Milliseconds left to an absolute th_now_ms() deadline, >= 0. */
static int left_ms(int64_t deadline)
{
    int64_t l = deadline - th_now_ms();
    return l < 0 ? 0 : (int)l;
}

/* poll one fd until ready or the deadline: 1 ready, 0 timeout, -1 error */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events, .revents = 0};
        int rc = poll(&p, 1, left_ms(deadline));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -1;
        return rc > 0 ? 1 : 0;
    }
}

/* Map a failed SSL call. TC_WANT with c->want set, or a final result. */
static int classify(tc_conn *c, int r, const char *what)
{
    int e = SSL_get_error(SSLP(c), r);

    switch (e) {
    case SSL_ERROR_WANT_READ:
        c->want = POLLIN;
        return TC_WANT;
    case SSL_ERROR_WANT_WRITE:
        c->want = POLLOUT;
        return TC_WANT;
    case SSL_ERROR_ZERO_RETURN:
        snprintf(c->err, sizeof c->err, "%s: peer sent close_notify", what);
        ERR_clear_error();
        return TC_CLOSE_NOTIFY;
    default:
        break;
    }
    if (c->io_errno == 0 && c->eof) {
        snprintf(c->err, sizeof c->err, "%s: end of stream", what);
        ERR_clear_error();
        return TC_EOF;
    }
    set_err(c, what);
    return TC_ERR;
}

void tc_opts_init(tc_opts *o)
{
    memset(o, 0, sizeof *o);
    o->min_version = TLS1_2_VERSION;
}

static SSL_CTX *make_ctx(const tc_opts *o, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) {
        snprintf(err, errlen, "SSL_CTX_new failed");
        return NULL;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, o->min_version ? o->min_version
                                                           : TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, o->max_version)) {
        snprintf(err, errlen, "cannot set the protocol versions");
        goto fail;
    }
    if (o->ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
            snprintf(err, errlen, "cannot load CA %s", o->ca_file);
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    if (o->cert_file != NULL &&
        (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1 ||
         SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) !=
             1)) {
        snprintf(err, errlen, "cannot load client cert %s", o->cert_file);
        goto fail;
    }
    if (o->alpn != NULL) {
        unsigned char wire[256];
        size_t at = 0;
        const char *p = o->alpn;

        while (*p != '\0') {
            const char *comma = strchr(p, ',');
            size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);

            if (n == 0 || n > 255 || at + 1 + n > sizeof wire) {
                snprintf(err, errlen, "bad ALPN list %s", o->alpn);
                goto fail;
            }
            wire[at++] = (unsigned char)n;
            memcpy(wire + at, p, n);
            at += n;
            p += n;
            if (*p == ',')
                p++;
        }
        if (SSL_CTX_set_alpn_protos(ctx, wire, (unsigned int)at) != 0) {
            snprintf(err, errlen, "SSL_CTX_set_alpn_protos failed");
            goto fail;
        }
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

static int setup_ssl(tc_conn *c, const tc_opts *o)
{
    BIO_METHOD *meth;
    BIO *bio;
    SSL *ssl;

    c->ctx = make_ctx(o, c->err, sizeof c->err);
    if (c->ctx == NULL)
        return TC_ERR;
    meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                        "tc-nosigpipe");
    c->meth = meth;
    if (meth == NULL || !BIO_meth_set_write(meth, bio_write_cb) ||
        !BIO_meth_set_read(meth, bio_read_cb) ||
        !BIO_meth_set_ctrl(meth, bio_ctrl_cb)) {
        snprintf(c->err, sizeof c->err, "BIO_meth_new failed");
        return TC_ERR;
    }
    ssl = SSL_new(c->ctx);
    c->ssl = ssl;
    bio = ssl != NULL ? BIO_new(meth) : NULL;
    if (bio == NULL) {
        snprintf(c->err, sizeof c->err, "SSL_new / BIO_new failed");
        return TC_ERR;
    }
    BIO_set_data(bio, c);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl, bio, bio);
    if (o->sni != NULL && !SSL_set_tlsext_host_name(ssl, o->sni)) {
        snprintf(c->err, sizeof c->err, "cannot set SNI");
        return TC_ERR;
    }
    if (o->ca_file != NULL && o->verify_host != NULL &&
        !SSL_set1_host(ssl, o->verify_host)) {
        snprintf(c->err, sizeof c->err, "cannot set the host to verify");
        return TC_ERR;
    }
    SSL_set_connect_state(ssl);
    return TC_OK;
}

int tc_open(tc_conn *c, int port, const tc_opts *o, int timeout_ms)
{
    int fd, flags, one = 1;

    memset(c, 0, sizeof *c);
    c->fd = -1;
    fd = th_connect(AF_INET, port, timeout_ms);
    if (fd < 0) {
        snprintf(c->err, sizeof c->err, "connect: %s", strerror(-fd));
        return TC_ERR;
    }
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        snprintf(c->err, sizeof c->err, "fcntl: %s", strerror(errno));
        close(fd);
        return TC_ERR;
    }
    c->fd = fd;
    /* As browsers and curl do: no Nagle delay on the client's side, so
     * that timings measure the server. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (setup_ssl(c, o) != TC_OK) {
        char keep[sizeof c->err];

        memcpy(keep, c->err, sizeof keep);
        tc_close(c);
        memcpy(c->err, keep, sizeof keep);
        return TC_ERR;
    }
    return TC_OK;
}

int tc_step(tc_conn *c)
{
    int r;

    c->io_errno = 0;
    ERR_clear_error();
    r = SSL_connect(SSLP(c));
    if (r == 1)
        return TC_OK;
    return classify(c, r, "handshake");
}

int tc_handshake(tc_conn *c, int timeout_ms)
{
    int64_t deadline = th_now_ms() + timeout_ms;

    for (;;) {
        int rc = tc_step(c);

        if (rc != TC_WANT)
            return rc;
        rc = wait_fd(c->fd, c->want, deadline);
        if (rc == 0) {
            snprintf(c->err, sizeof c->err, "handshake: timed out");
            return TC_TIMEOUT;
        }
        if (rc < 0) {
            snprintf(c->err, sizeof c->err, "poll: %s", strerror(errno));
            return TC_ERR;
        }
    }
}

int tc_write_all(tc_conn *c, const void *buf, size_t len, int timeout_ms)
{
    int64_t deadline = th_now_ms() + timeout_ms;
    size_t done = 0;

    while (done < len) {
        size_t n = 0;
        int r, rc;

        c->io_errno = 0;
        ERR_clear_error();
        r = SSL_write_ex(SSLP(c), (const char *)buf + done, len - done, &n);
        if (r == 1) {
            done += n;
            continue;
        }
        rc = classify(c, r, "write");
        if (rc != TC_WANT)
            return rc;
        rc = wait_fd(c->fd, c->want, deadline);
        if (rc <= 0)
            return rc == 0 ? TC_TIMEOUT : TC_ERR;
    }
    return TC_OK;
}

int tc_read_some(tc_conn *c, void *buf, size_t len, size_t *n, int timeout_ms)
{
    int64_t deadline = th_now_ms() + timeout_ms;

    *n = 0;
    for (;;) {
        int r, rc;

        c->io_errno = 0;
        ERR_clear_error();
        r = SSL_read_ex(SSLP(c), buf, len, n);
        if (r == 1)
            return TC_OK;
        *n = 0;
        rc = classify(c, r, "read");
        if (rc != TC_WANT)
            return rc;
        rc = wait_fd(c->fd, c->want, deadline);
        if (rc <= 0)
            return rc == 0 ? TC_TIMEOUT : TC_ERR;
    }
}

int tc_read_exact(tc_conn *c, void *buf, size_t len, int timeout_ms)
{
    int64_t deadline = th_now_ms() + timeout_ms;
    size_t done = 0;

    while (done < len) {
        size_t n = 0;
        int rc = tc_read_some(c, (char *)buf + done, len - done, &n,
                              left_ms(deadline));
        if (rc != TC_OK)
            return rc;
        done += n;
    }
    return TC_OK;
}

int tc_echo(tc_conn *c, const void *out, void *in, size_t len, int timeout_ms)
{
    int64_t deadline = th_now_ms() + timeout_ms;
    size_t sent = 0, rcvd = 0;

    while (rcvd < len) {
        int progress = 0;
        short events = POLLIN;
        size_t n = 0;
        int r, rc;

        if (sent < len) {
            /* A retried SSL_write gets the same pointer and length. */
            size_t chunk = len - sent < 16384 ? len - sent : 16384;

            c->io_errno = 0;
            ERR_clear_error();
            r = SSL_write_ex(SSLP(c), (const char *)out + sent, chunk, &n);
            if (r == 1) {
                sent += n;
                progress = 1;
            } else {
                rc = classify(c, r, "echo write");
                if (rc != TC_WANT)
                    return rc;
                events |= c->want;
            }
        }
        c->io_errno = 0;
        ERR_clear_error();
        r = SSL_read_ex(SSLP(c), (char *)in + rcvd, len - rcvd, &n);
        if (r == 1) {
            rcvd += n;
            progress = 1;
        } else {
            rc = classify(c, r, "echo read");
            if (rc != TC_WANT)
                return rc;
            events |= c->want;
        }
        if (progress)
            continue;
        rc = wait_fd(c->fd, events, deadline);
        if (rc == 0) {
            snprintf(c->err, sizeof c->err,
                     "echo: timed out (%zu sent, %zu received of %zu)", sent,
                     rcvd, len);
            return TC_TIMEOUT;
        }
        if (rc < 0)
            return TC_ERR;
    }
    return TC_OK;
}

int tc_shutdown(tc_conn *c)
{
    int r;

    c->io_errno = 0;
    ERR_clear_error();
    r = SSL_shutdown(SSLP(c));
    if (r >= 0)
        return TC_OK;
    r = classify(c, r, "shutdown");
    return r == TC_WANT ? TC_OK : r;
}

void tc_close(tc_conn *c)
{
    if (c->ssl != NULL)
        SSL_free(SSLP(c)); /* frees the BIO too */
    c->ssl = NULL;
    if (c->ctx != NULL)
        SSL_CTX_free((SSL_CTX *)c->ctx);
    c->ctx = NULL;
    if (c->meth != NULL)
        BIO_meth_free((BIO_METHOD *)c->meth);
    c->meth = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    ERR_clear_error();
}

const char *tc_version(const tc_conn *c)
{
    return c->ssl != NULL ? SSL_get_version(SSLP(c)) : "";
}

const char *tc_cipher(const tc_conn *c)
{
    const SSL_CIPHER *cs =
        c->ssl != NULL ? SSL_get_current_cipher(SSLP(c)) : NULL;
    return cs != NULL ? SSL_CIPHER_standard_name(cs) : "";
}

const char *tc_alpn(const tc_conn *c, char *buf, size_t len)
{
    const unsigned char *a = NULL;
    unsigned int alen = 0;

    buf[0] = '\0';
    if (c->ssl != NULL)
        SSL_get0_alpn_selected(SSLP(c), &a, &alen);
    if (a != NULL && alen > 0 && alen < len) {
        memcpy(buf, a, alen);
        buf[alen] = '\0';
    }
    return buf;
}

int tc_client_hello(const tc_opts *o, uint8_t *buf, size_t cap, size_t *len)
{
    char err[256];
    SSL_CTX *ctx = make_ctx(o, err, sizeof err);
    SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    int rc = TC_ERR, n;

    *len = 0;
    if (ssl == NULL || rb == NULL || wb == NULL) {
        BIO_free(rb);
        BIO_free(wb);
        goto out;
    }
    SSL_set_bio(ssl, rb, wb);
    if (o->sni != NULL)
        (void)SSL_set_tlsext_host_name(ssl, o->sni);
    SSL_set_connect_state(ssl);
    if (SSL_connect(ssl) == 1) /* cannot finish without a server */
        goto out;
    n = BIO_read(wb, buf, (int)cap);
    if (n > 0 && BIO_ctrl_pending(wb) == 0) {
        *len = (size_t)n;
        rc = TC_OK;
    }
out:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}
