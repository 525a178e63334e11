/*
 * The TLS half of an accepted socket: the transport callbacks the backend
 * reaches the descriptor through, handshake steps for the acceptor, and
 * read/write/close_notify under the socket's timeouts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tls_backend.h"
#include "ssock/tls.h"

struct tls_conn {
    struct ssock__tls_io io;
    const struct ssock__tls_backend *be;
    void *sess; /* NULL once released (the socket is closed) */
    int eof;    /* end of stream seen: every later read says so */
    /* What the accessors answer after the session is gone: copies made
     * at release, in one allocation. */
    struct ssock__tls_info kept;
    const char *kept_error;
    char *kept_buf;
};

static ssize_t io_send(void *ctx, const void *buf, size_t len)
{
    ssock_socket *s = ctx;
    ssize_t n;
    do {
        n = s->sys->send(s->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n;
}

static ssize_t io_recv(void *ctx, void *buf, size_t len)
{
    ssock_socket *s = ctx;
    ssize_t n;
    do {
        n = s->sys->recv(s->fd, buf, len, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n;
}

static short want_events(int rc)
{
    return rc == SSOCK__TLS_WANT_WRITE ? POLLOUT : POLLIN;
}

static int is_want(int rc)
{
    return rc == SSOCK__TLS_WANT_READ || rc == SSOCK__TLS_WANT_WRITE;
}

static int tls_read(ssock_socket *s, void *buf, size_t len, size_t *n)
{
    struct tls_conn *c = s->tls;
    ssock__deadline d = 0;
    int have_deadline = 0;
    if (c->eof)
        return SSOCK_EOF;
    for (;;) {
        int rc = c->be->read(c->sess, buf, len, n);
        if (rc == SSOCK_EOF)
            c->eof = 1;
        if (!is_want(rc))
            return rc;
        if (!have_deadline) {
            d = ssock__deadline_in(s->read_timeout_ms);
            have_deadline = 1;
        }
        rc = ssock__socket_wait(s, want_events(rc), d);
        if (rc != 0)
            return rc;
    }
}

static int tls_write(ssock_socket *s, const char *buf, size_t len,
                     size_t *nwritten)
{
    struct tls_conn *c = s->tls;
    size_t done = 0;
    int rc = 0;
    while (done < len) {
        size_t n = 0;
        rc = c->be->write(c->sess, buf + done, len - done, &n);
        if (rc == 0) {
            done += n;
            continue;
        }
        if (!is_want(rc))
            break;
        rc = ssock__socket_wait(s, want_events(rc),
                                ssock__deadline_in(s->write_timeout_ms));
        if (rc != 0)
            break;
    }
    *nwritten = done;
    return rc;
}

static void tls_goodbye(ssock_socket *s)
{
    struct tls_conn *c = s->tls;
    ssock__deadline d = ssock__deadline_in(s->write_timeout_ms);
    for (;;) {
        int rc = c->be->close_notify(c->sess);
        if (!is_want(rc))
            return;
        if (ssock__socket_wait(s, want_events(rc), d) != 0)
            return;
    }
}

/* Copy the session's descriptive strings before the session goes. */
static void keep_info(struct tls_conn *c)
{
    struct ssock__tls_info info;
    const char *src[6];
    size_t len[6], total = 0;

    c->be->info(c->sess, &info);
    src[0] = info.version;
    src[1] = info.cipher;
    src[2] = info.alpn;
    src[3] = info.sni;
    src[4] = info.peer_subject;
    src[5] = c->be->session_error(c->sess);
    for (int i = 0; i < 6; i++) {
        len[i] = src[i] != NULL ? strlen(src[i]) + 1 : 0;
        total += len[i];
    }
    c->kept_buf = total > 0 ? malloc(total) : NULL;
    if (c->kept_buf == NULL)
        return; /* the accessors answer NULL: nothing worse */
    const char *dst[6];
    char *p = c->kept_buf;
    for (int i = 0; i < 6; i++) {
        dst[i] = NULL;
        if (src[i] != NULL) {
            memcpy(p, src[i], len[i]);
            dst[i] = p;
            p += len[i];
        }
    }
    c->kept.version = dst[0];
    c->kept.cipher = dst[1];
    c->kept.alpn = dst[2];
    c->kept.sni = dst[3];
    c->kept.peer_subject = dst[4];
    c->kept_error = dst[5];
}

static void tls_release(ssock_socket *s)
{
    struct tls_conn *c = s->tls;
    keep_info(c);
    c->be->session_free(c->sess);
    c->sess = NULL;
}

static void tls_destroy(ssock_socket *s)
{
    struct tls_conn *c = s->tls;
    free(c->kept_buf);
    free(c);
    s->tls = NULL;
}

static const struct ssock__conn_ops tls_ops = {
    .read = tls_read,
    .write = tls_write,
    .goodbye = tls_goodbye,
    .release = tls_release,
    .destroy = tls_destroy,
};

int ssock__tls_socket_attach(ssock_socket *s, ssock_tls_config *cfg)
{
    struct tls_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return SSOCK_ENOMEM;
    c->io.ctx = s;
    c->io.send = io_send;
    c->io.recv = io_recv;
    c->be = ssock__tls_config_backend(cfg);
    int rc = c->be->session_new(ssock__tls_config_bcfg(cfg), &c->io, &c->sess);
    if (rc != 0) {
        free(c);
        return rc;
    }
    s->tls = c;
    s->ops = &tls_ops;
    return 0;
}

int ssock__tls_socket_handshake(ssock_socket *s)
{
    struct tls_conn *c = s->tls;
    int rc = c->be->handshake(c->sess);
    if (is_want(rc))
        return want_events(rc);
    return rc;
}

static const struct ssock__tls_info *info_of(const ssock_socket *s,
                                             struct ssock__tls_info *info)
{
    if (s == NULL || s->tls == NULL)
        return NULL;
    const struct tls_conn *c = s->tls;
    if (c->sess == NULL)
        return &c->kept;
    c->be->info(c->sess, info);
    return info;
}

#define SSOCK__TLS_INFO_GETTER(field)                                          \
    const char *ssock_socket_tls_##field(const ssock_socket *s)                \
    {                                                                          \
        struct ssock__tls_info buf;                                            \
        const struct ssock__tls_info *info = info_of(s, &buf);                 \
        return info != NULL ? info->field : NULL;                              \
    }
SSOCK__TLS_INFO_GETTER(version)
SSOCK__TLS_INFO_GETTER(cipher)
SSOCK__TLS_INFO_GETTER(alpn)
SSOCK__TLS_INFO_GETTER(sni)
SSOCK__TLS_INFO_GETTER(peer_subject)
#undef SSOCK__TLS_INFO_GETTER

const char *ssock_socket_tls_error(const ssock_socket *s)
{
    if (s == NULL || s->tls == NULL)
        return NULL;
    const struct tls_conn *c = s->tls;
    if (c->sess == NULL)
        return c->kept_error;
    return c->be->session_error(c->sess);
}

void ssock__tls_socket_error(ssock_socket *s, char *buf, size_t len)
{
    const char *e = ssock_socket_tls_error(s);
    snprintf(buf, len, "%s", e != NULL ? e : "");
}
