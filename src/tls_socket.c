/*
 * The TLS half of an accepted socket: the transport callbacks the backend
 * reaches the descriptor through, handshake steps for the acceptor, and
 * read/write/close_notify under the socket's timeouts.
 *
 * Budgets. A backend call (one handshake step, one read) may loop inside
 * the backend over records it swallows (warning alerts, empty records,
 * ChangeCipherSpec, handshake fragments), as long as data keeps arriving.
 * The transport therefore answers "would block" after RECV_BUDGET recv()
 * calls within one backend call, so every call comes back to our loop,
 * which checks its deadline and a close before it goes on.
 *
 * Facts. Version, cipher, group, ALPN, SNI, peer subject and the client's
 * certificate chain never change after the handshake, so they are copied
 * once, when it finishes (by the accepting thread, before the socket is
 * handed out); the getters read only that copy and never touch the live
 * session (a close from another thread may be freeing it), so they are
 * safe from any thread while the handle is alive.
 *
 * End of stream. The backends tell a close_notify (SSOCK_EOF) from a
 * transport end without one (SSOCK_ETRUNCATED); either is kept and
 * returned by every later read.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tls_backend.h"
#include "ssock/tls.h"

/* recv() calls one backend call may make before it is sent back to the
 * loop. A record takes two (header, body); a client flight a handful. */
#define RECV_BUDGET 64
/* Bytes one backend call may receive: two records of the largest size.
 * With read-ahead (OpenSSL during the handshake) one recv() can bring a
 * whole buffer of tiny records; this keeps the work of one call bounded in
 * bytes as well as in calls. */
#define RECV_BYTES_BUDGET (2 * (16384 + 2048))

struct tls_conn {
    struct ssock__tls_io io;
    const struct ssock__tls_backend *be;
    ssock_tls_config *cfg; /* a reference: the session's configuration */
    void *sess;            /* NULL once released (the socket is closed) */
    /* Non-blocking mode: a record the backend built from bytes we have
     * counted as written, which it must be given again (the same bytes)
     * until it goes out; NULL when none. */
    unsigned char *q;
    size_t qlen, qoff;
    /* Non-blocking mode: encrypted bytes the backend has "sent" that the
     * kernel has not taken yet (alerts, records, close_notify), pushed by
     * every later call; NULL when none. The backends never see a send
     * refused while this has room, so nothing stays stuck inside them. */
    unsigned char *ob;
    size_t olen, ooff, ocap;
    int notify_sent; /* non-blocking shutdown_write: close_notify made */
    int eof;         /* 0, or SSOCK_EOF / SSOCK_ETRUNCATED: every later
                        read returns it */
    int wbroken;     /* a write failed part way: no more writes */
    int recv_left;   /* of the current backend call's budget */
    size_t recv_bytes_left;
    int have_facts; /* `facts` was filled when the handshake finished */
    struct ssock__tls_info facts;
    char *facts_buf;                /* strings and DER of `facts` */
    const unsigned char **peer_der; /* facts.peer_der */
    size_t *peer_len;               /* facts.peer_len */
    char error[256]; /* backend text of the last failure, or "" */
};

/* Most encrypted bytes kept for the kernel in non-blocking mode: a whole
 * record of the largest size with room for alerts around it. */
#define OUT_MAX (2 * 16384 + 1024)

static void set_queued(ssock_socket *s)
{
    struct tls_conn *c = s->tls;
    s->queued = c->q != NULL || c->ob != NULL;
}

/* Send what the out buffer holds: 0 (now empty), SSOCK__TLS_WANT_WRITE
 * (the kernel is full), or -errno. */
static int out_push(ssock_socket *s)
{
    struct tls_conn *c = s->tls;
    while (c->ob != NULL && c->ooff < c->olen) {
        ssize_t n = s->sys->send(s->fd, c->ob + c->ooff, c->olen - c->ooff,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->ooff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return SSOCK__TLS_WANT_WRITE;
        return n < 0 ? -errno : -EPIPE;
    }
    free(c->ob);
    c->ob = NULL;
    c->olen = c->ooff = c->ocap = 0;
    set_queued(s);
    return 0;
}

static int out_append(ssock_socket *s, const void *buf, size_t len)
{
    struct tls_conn *c = s->tls;
    if (c->ob != NULL && c->ooff > 0) {
        memmove(c->ob, c->ob + c->ooff, c->olen - c->ooff);
        c->olen -= c->ooff;
        c->ooff = 0;
    }
    if (c->olen + len > c->ocap) {
        size_t cap = c->olen + len;
        unsigned char *b = realloc(c->ob, cap);
        if (b == NULL)
            return -1;
        c->ob = b;
        c->ocap = cap;
    }
    memcpy(c->ob + c->olen, buf, len);
    c->olen += len;
    set_queued(s);
    return 0;
}

static ssize_t io_send(void *ctx, const void *buf, size_t len)
{
    ssock_socket *s = ctx;
    struct tls_conn *c = s->tls;
    ssize_t n = 0;
    if (s->nonblocking && c->ob != NULL) {
        int r = out_push(s);
        if (r < 0) {
            errno = -r;
            return -1;
        }
    }
    if (c->ob == NULL) {
        do {
            n = s->sys->send(s->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
        if (!s->nonblocking || (size_t)n == len)
            return n;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (n < 0)
            n = 0;
    }
    /* Non-blocking: keep the rest for the kernel and report it sent. */
    size_t rest = len - (size_t)n;
    if (c->olen - c->ooff + rest > OUT_MAX ||
        out_append(s, (const char *)buf + n, rest) != 0) {
        if (n > 0)
            return n;
        errno = EAGAIN;
        return -1;
    }
    return (ssize_t)len;
}

static void budget(struct tls_conn *c)
{
    c->recv_left = RECV_BUDGET;
    c->recv_bytes_left = RECV_BYTES_BUDGET;
}

static ssize_t io_recv(void *ctx, void *buf, size_t len)
{
    ssock_socket *s = ctx;
    struct tls_conn *c = s->tls;
    if (c->recv_left <= 0 || c->recv_bytes_left == 0) {
        errno = EAGAIN;
        return -1;
    }
    c->recv_left--;
    if (len > c->recv_bytes_left)
        len = c->recv_bytes_left;
    ssize_t n;
    do {
        n = s->sys->recv(s->fd, buf, len, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0)
        c->recv_bytes_left -= (size_t)n;
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

static void keep_error(struct tls_conn *c)
{
    const char *e = c->be->session_error(c->sess);
    snprintf(c->error, sizeof(c->error), "%s", e != NULL ? e : "");
}

/* Wait for `events` on a socket inside a call: 0 to go on, or the status
 * to return (closed, deadline passed, poll failed). A deadline that has
 * passed ends the call even when the descriptor is ready: a peer that
 * keeps sending cannot stretch a call past its timeout. */
static int wait_more(ssock_socket *s, short events, ssock__deadline d)
{
    int rc = ssock__socket_dead(s);
    if (rc != 0)
        return rc;
    if (ssock__deadline_expired(d))
        return SSOCK_ETIMEOUT;
    return ssock__socket_wait(s, events, d);
}

static int want_of(int rc)
{
    return rc == SSOCK__TLS_WANT_WRITE ? SSOCK_WANT_WRITE : SSOCK_WANT_READ;
}

/* Non-blocking mode: give the backend the queued record's bytes again
 * until they are all out. 0 (nothing left queued), SSOCK__TLS_WANT_* or a
 * negative status (the write side is then broken). */
static int flush_queue(ssock_socket *s)
{
    struct tls_conn *c = s->tls;
    while (c->q != NULL) {
        size_t n = 0;
        budget(c);
        int rc = c->be->write(c->sess, c->q + c->qoff, c->qlen - c->qoff, &n);
        if (is_want(rc))
            return rc;
        if (rc != 0) {
            keep_error(c);
            c->wbroken = 1;
            return rc;
        }
        c->qoff += n;
        if (c->qoff >= c->qlen) {
            free(c->q);
            c->q = NULL;
            c->qlen = c->qoff = 0;
            set_queued(s);
        }
    }
    return 0;
}

/* Everything queued out, in order: the out buffer, the record the backend
 * holds (which refills the out buffer), the out buffer again. 0 when all
 * is out, SSOCK__TLS_WANT_WRITE, or a negative status. */
static int drain_out(ssock_socket *s)
{
    struct tls_conn *c = s->tls;
    int rc = out_push(s);
    if (rc == 0 && c->q != NULL) {
        rc = flush_queue(s);
        if (rc == 0)
            rc = out_push(s);
    }
    return rc;
}

static int tls_read_nb(ssock_socket *s, void *buf, size_t len, size_t *n)
{
    struct tls_conn *c = s->tls;
    /* Reads push queued output too (errors show on the next write). */
    if (c->ob != NULL && !c->wbroken)
        (void)out_push(s);
    if (c->q != NULL && !c->wbroken)
        (void)flush_queue(s);
    budget(c);
    int rc = c->be->read(c->sess, buf, len, n);
    if (rc == SSOCK_EOF || rc == SSOCK_ETRUNCATED)
        c->eof = rc;
    if (is_want(rc))
        /* Output still queued needs a writable descriptor first: a loop
         * waiting for input might otherwise wait for a peer that waits for
         * that output. */
        return ssock__nb_read_blocked(
            s, c->q != NULL || c->ob != NULL ? SSOCK_WANT_WRITE : want_of(rc));
    if (rc < 0 && rc != SSOCK_EOF)
        keep_error(c);
    return rc;
}

static int tls_read(ssock_socket *s, void *buf, size_t len, size_t *n)
{
    struct tls_conn *c = s->tls;
    ssock__deadline d = 0;
    int have_deadline = 0;
    if (c->eof != 0)
        return c->eof;
    if (s->nonblocking)
        return tls_read_nb(s, buf, len, n);
    for (;;) {
        budget(c);
        int rc = c->be->read(c->sess, buf, len, n);
        if (rc == SSOCK_EOF || rc == SSOCK_ETRUNCATED)
            c->eof = rc;
        if (!is_want(rc)) {
            if (rc < 0 && rc != SSOCK_EOF)
                keep_error(c);
            return rc;
        }
        if (!have_deadline) {
            d = ssock__deadline_in(s->read_timeout_ms);
            have_deadline = 1;
        }
        rc = wait_more(s, want_events(rc), d);
        if (rc != 0)
            return rc;
    }
}

/*
 * After the backend said "would block" it holds an encrypted record made
 * from our bytes, and must be called again with the same bytes. If we give
 * up then (timeout, error, close), the bytes *nwritten does not count may
 * or may not reach the peer, and a later write would send that record in
 * place of its own data. So the write side is marked broken: every later
 * write fails with SSOCK_EBROKEN, and close sends no close_notify (the peer
 * sees the stream end without one, which is the truth).
 */
/* Bytes given to the backend per call in non-blocking mode: one record,
 * so at most one record's bytes are ever queued. */
#define NB_CHUNK 16384

/* A non-blocking flush or write could not go on: EAGAIN, or ETIMEOUT
 * after the write timeout without progress (which breaks the write side
 * when bytes we counted are still queued). */
static int write_blocked(ssock_socket *s, int want_rc, int progressed)
{
    struct tls_conn *c = s->tls;
    int rc = ssock__nb_write_blocked(s, want_of(want_rc), progressed);
    if (rc == SSOCK_ETIMEOUT && (c->q != NULL || c->ob != NULL))
        c->wbroken = 1;
    return rc;
}

/* Push everything queued: the out buffer, then the record the backend
 * holds (which refills the out buffer), then the out buffer again. */
static int tls_flush(ssock_socket *s)
{
    struct tls_conn *c = s->tls;
    if (c->q == NULL && c->ob == NULL)
        return 0;
    if (c->wbroken)
        return SSOCK_EBROKEN;
    size_t before = c->qoff + c->ooff;
    int rc = drain_out(s);
    if (is_want(rc))
        return write_blocked(s, rc, c->qoff + c->ooff != before);
    if (rc < 0)
        c->wbroken = 1;
    return rc;
}

static int tls_write_nb(ssock_socket *s, const char *buf, size_t len,
                        size_t *nwritten)
{
    struct tls_conn *c = s->tls;
    size_t done = 0;
    int rc = tls_flush(s);
    if (rc != 0) {
        *nwritten = 0;
        return rc;
    }
    while (done < len) {
        size_t n = 0, chunk = len - done < NB_CHUNK ? len - done : NB_CHUNK;
        budget(c);
        rc = c->be->write(c->sess, buf + done, chunk, &n);
        if (rc == 0) {
            done += n;
            if (c->ob != NULL) {
                /* The kernel is full: what is taken waits in the out
                 * buffer; take no more until it drains. */
                rc = write_blocked(s, SSOCK__TLS_WANT_WRITE, 1);
                break;
            }
            continue;
        }
        if (!is_want(rc)) {
            keep_error(c);
            c->wbroken = 1;
            break;
        }
        /* The backend holds a record made from buf[done .. done+chunk):
         * keep those bytes, count them as written, and give them back
         * until the record is out (flush_queue). */
        c->q = malloc(chunk);
        if (c->q == NULL) {
            c->wbroken = 1;
            rc = SSOCK_ENOMEM;
            break;
        }
        memcpy(c->q, buf + done, chunk);
        c->qlen = chunk;
        c->qoff = 0;
        set_queued(s);
        done += chunk;
        rc = write_blocked(s, rc, done > 0);
        break;
    }
    *nwritten = done;
    return rc;
}

static int tls_write(ssock_socket *s, const char *buf, size_t len,
                     size_t *nwritten)
{
    struct tls_conn *c = s->tls;
    size_t done = 0;
    int rc = 0;
    if (c->wbroken) {
        *nwritten = 0;
        return SSOCK_EBROKEN;
    }
    if (s->nonblocking)
        return tls_write_nb(s, buf, len, nwritten);
    if (c->q != NULL || c->ob != NULL) {
        /* Back in blocking mode with bytes queued: out with them first. */
        for (;;) {
            rc = drain_out(s);
            if (!is_want(rc))
                break;
            rc = wait_more(s, want_events(rc),
                           ssock__deadline_in(s->write_timeout_ms));
            if (rc != 0) {
                c->wbroken = 1;
                break;
            }
        }
        if (rc != 0) {
            *nwritten = 0;
            return rc;
        }
    }
    while (done < len) {
        size_t n = 0;
        budget(c);
        rc = c->be->write(c->sess, buf + done, len - done, &n);
        if (rc == 0) {
            done += n;
            continue;
        }
        if (!is_want(rc)) {
            keep_error(c);
            c->wbroken = 1;
            break;
        }
        rc = wait_more(s, want_events(rc),
                       ssock__deadline_in(s->write_timeout_ms));
        if (rc != 0) {
            c->wbroken = 1;
            break;
        }
    }
    *nwritten = done;
    return rc;
}

/* close_notify until sent, failed or the deadline. `closing`: we are the
 * close itself (the socket is already marked closed; a server close still
 * ends the wait, by shutting the descriptor down). */
static int send_close_notify(ssock_socket *s, ssock__deadline d, int closing)
{
    struct tls_conn *c = s->tls;
    for (;;) {
        budget(c);
        int rc = c->be->close_notify(c->sess);
        if (!is_want(rc))
            return rc;
        if (closing)
            rc = ssock__deadline_expired(d)
                     ? SSOCK_ETIMEOUT
                     : ssock__socket_wait(s, want_events(rc), d);
        else
            rc = wait_more(s, want_events(rc), d);
        if (rc != 0)
            return rc;
    }
}

static int tls_shutdown_write(ssock_socket *s)
{
    struct tls_conn *c = s->tls;
    if (c->wbroken)
        return SSOCK_EBROKEN;
    if (s->nonblocking) {
        int rc = tls_flush(s);
        if (rc != 0 || c->notify_sent)
            return rc;
        budget(c);
        rc = c->be->close_notify(c->sess);
        if (is_want(rc))
            return write_blocked(s, rc, 0);
        if (rc != 0) {
            c->wbroken = 1;
            keep_error(c);
            return rc;
        }
        c->notify_sent = 1;
        return tls_flush(s); /* 0 only once it has left */
    }
    int rc = send_close_notify(s, ssock__deadline_in(s->write_timeout_ms), 0);
    if (rc != 0) {
        c->wbroken = 1;
        if (rc == SSOCK_ETLS)
            keep_error(c);
    }
    return rc;
}

static void tls_goodbye(ssock_socket *s)
{
    struct tls_conn *c = s->tls;
    if (c->wbroken)
        return;
    if (s->nonblocking) {
        /* Never wait: what the kernel takes now, and nothing more. */
        if (drain_out(s) == 0 && !c->notify_sent) {
            (void)send_close_notify(s, ssock__now_ns(), 1);
            (void)out_push(s);
        }
        return;
    }
    if (c->q != NULL)
        return; /* a record is half out: a close_notify would follow it */
    int ms = s->write_timeout_ms;
    if (ms == SSOCK_WAIT_FOREVER || ms > SSOCK__GOODBYE_MAX_MS)
        ms = SSOCK__GOODBYE_MAX_MS;
    (void)send_close_notify(s, ssock__deadline_in(ms), 1);
}

static size_t tls_pending(ssock_socket *s)
{
    struct tls_conn *c = s->tls;
    return c->sess != NULL ? c->be->pending(c->sess) : 0;
}

/* Copy the session's facts, once, when its handshake has finished: the
 * strings and the DER certificates into one buffer. On out of memory the
 * getters answer NULL / 0: nothing worse. */
enum { N_STR = 6 };

static void keep_facts(struct tls_conn *c)
{
    struct ssock__tls_info info;
    const char *src[N_STR];
    const char **dst[N_STR];
    size_t len[N_STR], total = 0, count;

    c->be->info(c->sess, &info);
    c->have_facts = 1;
    src[0] = info.version;
    src[1] = info.cipher;
    src[2] = info.group;
    src[3] = info.alpn;
    src[4] = info.sni;
    src[5] = info.peer_subject;
    dst[0] = &c->facts.version;
    dst[1] = &c->facts.cipher;
    dst[2] = &c->facts.group;
    dst[3] = &c->facts.alpn;
    dst[4] = &c->facts.sni;
    dst[5] = &c->facts.peer_subject;
    for (int i = 0; i < N_STR; i++) {
        len[i] = src[i] != NULL ? strlen(src[i]) + 1 : 0;
        total += len[i];
    }
    count =
        info.peer_der != NULL && info.peer_len != NULL ? info.peer_count : 0;
    for (size_t i = 0; i < count; i++)
        total += info.peer_len[i];
    if (total == 0)
        return;
    c->facts_buf = malloc(total);
    if (c->facts_buf == NULL)
        return;
    char *p = c->facts_buf;
    for (int i = 0; i < N_STR; i++) {
        if (src[i] != NULL) {
            memcpy(p, src[i], len[i]);
            *dst[i] = p;
            p += len[i];
        }
    }
    if (count == 0)
        return;
    c->peer_der = calloc(count, sizeof(*c->peer_der));
    c->peer_len = calloc(count, sizeof(*c->peer_len));
    if (c->peer_der == NULL || c->peer_len == NULL) {
        free(c->peer_der);
        free(c->peer_len);
        c->peer_der = NULL;
        c->peer_len = NULL;
        return;
    }
    for (size_t i = 0; i < count; i++) {
        memcpy(p, info.peer_der[i], info.peer_len[i]);
        c->peer_der[i] = (const unsigned char *)p;
        c->peer_len[i] = info.peer_len[i];
        p += info.peer_len[i];
    }
    c->facts.peer_der = c->peer_der;
    c->facts.peer_len = c->peer_len;
    c->facts.peer_count = count;
}

static void tls_release(ssock_socket *s)
{
    struct tls_conn *c = s->tls;
    c->be->session_free(c->sess);
    c->sess = NULL;
    free(c->q);
    c->q = NULL;
    free(c->ob);
    c->ob = NULL;
    c->olen = c->ooff = c->ocap = 0;
    s->queued = 0;
    ssock__tls_config_unref(c->cfg);
    c->cfg = NULL;
}

static void tls_destroy(ssock_socket *s)
{
    struct tls_conn *c = s->tls;
    free(c->facts_buf);
    free(c->peer_der);
    free(c->peer_len);
    free(c);
    s->tls = NULL;
}

static const struct ssock__conn_ops tls_ops = {
    .read = tls_read,
    .write = tls_write,
    .shutdown_write = tls_shutdown_write,
    .goodbye = tls_goodbye,
    .pending = tls_pending,
    .flush = tls_flush,
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
    c->cfg = ssock__tls_config_ref(cfg);
    s->tls = c;
    s->ops = &tls_ops;
    return 0;
}

int ssock__tls_socket_handshake(ssock_socket *s)
{
    struct tls_conn *c = s->tls;
    budget(c);
    int rc = c->be->handshake(c->sess);
    if (is_want(rc))
        return want_events(rc);
    if (rc == 0)
        keep_facts(c);
    else
        keep_error(c);
    return rc;
}

static const struct ssock__tls_info *facts_of(const ssock_socket *s)
{
    if (s == NULL || s->tls == NULL)
        return NULL;
    const struct tls_conn *c = s->tls;
    return c->have_facts ? &c->facts : NULL;
}

#define SSOCK__TLS_INFO_GETTER(field)                                          \
    const char *ssock_socket_tls_##field(const ssock_socket *s)                \
    {                                                                          \
        const struct ssock__tls_info *info = facts_of(s);                      \
        return info != NULL ? info->field : NULL;                              \
    }
SSOCK__TLS_INFO_GETTER(version)
SSOCK__TLS_INFO_GETTER(cipher)
SSOCK__TLS_INFO_GETTER(alpn)
SSOCK__TLS_INFO_GETTER(sni)
SSOCK__TLS_INFO_GETTER(peer_subject)
#undef SSOCK__TLS_INFO_GETTER

int ssock_socket_tls_info_sized(const ssock_socket *s, ssock_tls_info *out,
                                size_t size)
{
    ssock_tls_info all;
    if (out == NULL || size < sizeof(out->struct_size))
        return SSOCK_EINVAL;
    memset(out, 0, size);
    if (size > sizeof(all))
        size = sizeof(all);
    out->struct_size = size;
    if (s == NULL)
        return SSOCK_EINVAL;
    if (s->tls == NULL)
        return SSOCK_ENOTTLS;
    memset(&all, 0, sizeof(all));
    all.struct_size = size;
    const struct ssock__tls_info *f = facts_of(s);
    if (f != NULL) {
        all.version = f->version;
        all.cipher = f->cipher;
        all.group = f->group;
        all.alpn = f->alpn;
        all.sni = f->sni;
        all.peer_subject = f->peer_subject;
    }
    all.resumed = 0; /* no tickets, no session cache: never resumed */
    memcpy(out, &all, size);
    return 0;
}

size_t ssock_socket_tls_peer_cert_count(const ssock_socket *s)
{
    const struct ssock__tls_info *f = facts_of(s);
    return f != NULL ? f->peer_count : 0;
}

int ssock_socket_tls_peer_cert(const ssock_socket *s, size_t index,
                               const unsigned char **der, size_t *len)
{
    if (der != NULL)
        *der = NULL;
    if (len != NULL)
        *len = 0;
    if (s == NULL || der == NULL || len == NULL)
        return SSOCK_EINVAL;
    if (s->tls == NULL)
        return SSOCK_ENOTTLS;
    const struct ssock__tls_info *f = facts_of(s);
    if (f == NULL || index >= f->peer_count)
        return SSOCK_EINVAL;
    *der = f->peer_der[index];
    *len = f->peer_len[index];
    return 0;
}

const char *ssock_socket_tls_last_error(const ssock_socket *s)
{
    if (s == NULL || s->tls == NULL)
        return NULL;
    const struct tls_conn *c = s->tls;
    return c->error;
}

const char *ssock_socket_tls_error(const ssock_socket *s)
{
    if (s == NULL || s->tls == NULL)
        return NULL;
    const struct tls_conn *c = s->tls;
    return c->error;
}

void ssock__tls_socket_error(ssock_socket *s, char *buf, size_t len)
{
    const char *e = ssock_socket_tls_last_error(s);
    snprintf(buf, len, "%s", e != NULL ? e : "");
}
