/* Raw-socket attackers for tests/test_hostile.c: see hostile_client.h. */
#include "hostile_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

int hc_connect(const char *dst, int port, const char *src, int rcvbuf,
               int timeout_ms)
{
    int family = strchr(dst, ':') != NULL ? AF_INET6 : AF_INET;
    int fd = th_socket(family);
    int rc;

    if (fd < 0)
        return fd;
    if (rcvbuf > 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0) {
        rc = -errno;
        goto fail;
    }
    if (src != NULL) {
        struct sockaddr_storage ss;
        socklen_t len;

        memset(&ss, 0, sizeof ss);
        if (family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            a->sin_family = AF_INET;
            len = sizeof *a;
            rc = inet_pton(AF_INET, src, &a->sin_addr);
        } else {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            a->sin6_family = AF_INET6;
            len = sizeof *a;
            rc = inet_pton(AF_INET6, src, &a->sin6_addr);
        }
        if (rc != 1) {
            rc = -EINVAL;
            goto fail;
        }
        if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
            rc = -errno;
            goto fail;
        }
    }
    rc = th_connect_fd(fd, dst, port, timeout_ms);
    if (rc != 0)
        goto fail;
    return fd;
fail:
    close(fd);
    return rc;
}

size_t hc_record(uint8_t *out, uint8_t type, const uint8_t *body, size_t len)
{
    out[0] = type;
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
    if (body != NULL)
        memcpy(out + 5, body, len);
    else
        memset(out + 5, 0, len);
    return 5 + len;
}

const char *hc_flood_name(int kind)
{
    static const char *const names[HC_FLOOD_KINDS] = {
        "warning alerts",
        "empty handshake records",
        "empty application-data records",
        "ChangeCipherSpec records",
        "1-byte handshake fragments",
        "plaintext KeyUpdate messages",
        "16 KiB application-data records of junk"};
    return kind >= 0 && kind < HC_FLOOD_KINDS ? names[kind] : "?";
}

#define UNIT_TARGET 16384

int hc_flood_bytes(int kind, const uint8_t *hello, size_t hello_len,
                   uint8_t **prefix, size_t *prefix_len, uint8_t **unit,
                   size_t *unit_len)
{
    static const uint8_t warn[2] = {1, 90}; /* warning, user_canceled */
    static const uint8_t ccs[1] = {1};
    static const uint8_t keyupdate[5] = {24, 0, 0, 1, 0};
    /* client_key_exchange of 2^24 - 1 bytes: never completes. */
    static const uint8_t big_hs[4] = {16, 0xff, 0xff, 0xff};
    uint8_t rec[5 + 16384];
    size_t rlen = 0, at = 0;
    uint8_t *p = malloc(hello_len + 4 * 6);
    uint8_t *u = malloc(UNIT_TARGET + sizeof rec);

    if (p == NULL || u == NULL) {
        free(p);
        free(u);
        return -ENOMEM;
    }
    memcpy(p, hello, hello_len);
    *prefix_len = hello_len;
    switch (kind) {
    case HC_FLOOD_ALERT_WARN:
        rlen = hc_record(rec, HC_ALERT, warn, sizeof warn);
        break;
    case HC_FLOOD_EMPTY_HS:
        rlen = hc_record(rec, HC_HANDSHAKE, NULL, 0);
        break;
    case HC_FLOOD_EMPTY_APPDATA:
        rlen = hc_record(rec, HC_APPDATA, NULL, 0);
        break;
    case HC_FLOOD_CCS:
        rlen = hc_record(rec, HC_CCS, ccs, sizeof ccs);
        break;
    case HC_FLOOD_HS_FRAG1:
        for (size_t i = 0; i < sizeof big_hs; i++)
            *prefix_len +=
                hc_record(p + *prefix_len, HC_HANDSHAKE, big_hs + i, 1);
        rlen = hc_record(rec, HC_HANDSHAKE, NULL, 1);
        break;
    case HC_FLOOD_KEYUPDATE:
        rlen = hc_record(rec, HC_HANDSHAKE, keyupdate, sizeof keyupdate);
        break;
    case HC_FLOOD_APPDATA_JUNK: {
        uint8_t junk[16384];
        th_fill(junk, sizeof junk, 0x7a11, 0);
        rlen = hc_record(rec, HC_APPDATA, junk, sizeof junk);
        break;
    }
    default:
        free(p);
        free(u);
        return -EINVAL;
    }
    do {
        memcpy(u + at, rec, rlen);
        at += rlen;
    } while (at < UNIT_TARGET);
    *prefix = p;
    *unit = u;
    *unit_len = at;
    return 0;
}

/* ---- the flood thread ------------------------------------------------- */

static void flood_closed(hc_flood *f, int how)
{
    if (f->closed_ms >= 0)
        return; /* only the first connection's close is timed */
    f->closed_ms = th_now_ms();
    f->how = how;
    atomic_store(&f->ended, 1);
}

/* Send what is left of buf[*off..len) without blocking. 0 progress or
 * would block, 1 the server closed. */
static int flood_send(hc_flood *f, const uint8_t *buf, size_t len, size_t *off)
{
    while (*off < len) {
        ssize_t n =
            send(f->fd, buf + *off, len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            *off += (size_t)n;
            f->sent += (uint64_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        flood_closed(f, 2);
        return 1;
    }
    return 0;
}

/* Drain what the server sent. 1 when it closed. */
static int flood_drain(hc_flood *f)
{
    uint8_t buf[16384];
    for (;;) {
        ssize_t n = recv(f->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            f->received += (uint64_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        flood_closed(f, n == 0 ? 1 : 2);
        return 1;
    }
}

/* Flood the current connection: 1 when the server closed it, 0 on stop
 * or at the hard limit. */
static int flood_one(hc_flood *f, int64_t end)
{
    size_t off = 0;
    int in_prefix = 1;

    while (!atomic_load(&f->stop) && th_now_ms() < end) {
        struct pollfd p = {.fd = f->fd, .events = POLLIN | POLLOUT};
        int rc = poll(&p, 1, 20);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return 1;
        if (rc == 0)
            continue;
        if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && flood_drain(f))
            return 1;
        if (p.revents & POLLOUT) {
            const uint8_t *b = in_prefix ? f->prefix : f->unit;
            size_t len = in_prefix ? f->prefix_len : f->unit_len;
            if (flood_send(f, b, len, &off))
                return 1;
            if (off == len) {
                off = 0;
                in_prefix = 0;
            }
        }
    }
    return 0;
}

static void *flood_fn(void *arg)
{
    hc_flood *f = arg;
    int64_t end = th_now_ms() + f->max_ms;

    while (flood_one(f, end) && f->reconnect && !atomic_load(&f->stop) &&
           th_now_ms() < end) {
        int fd, fl;

        close(f->fd);
        f->fd = -1;
        fd = hc_connect("127.0.0.1", f->port, NULL, 0, 1000);
        if (fd < 0) {
            f->connect_error = -fd;
            break;
        }
        fl = fcntl(fd, F_GETFL);
        (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        f->fd = fd;
        f->conns++;
    }
    if (f->fd >= 0)
        th_close_rst(f->fd);
    f->fd = -1;
    return NULL;
}

int hc_flood_start(hc_flood *f, int fd, int port, int reconnect,
                   const uint8_t *prefix, size_t prefix_len,
                   const uint8_t *unit, size_t unit_len, int max_ms)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return errno;
    f->fd = fd;
    f->port = port;
    f->reconnect = reconnect;
    f->conns = 1;
    f->connect_error = 0;
    f->prefix = prefix;
    f->prefix_len = prefix_len;
    f->unit = unit;
    f->unit_len = unit_len;
    f->max_ms = max_ms;
    atomic_init(&f->stop, 0);
    atomic_init(&f->ended, 0);
    f->closed_ms = -1;
    f->how = 0;
    f->sent = 0;
    f->received = 0;
    f->start_ms = th_now_ms();
    return th_thread_start(&f->t, flood_fn, f);
}

int hc_flood_closed(hc_flood *f)
{
    return atomic_load(&f->ended);
}

int hc_flood_join(hc_flood *f, int timeout_ms)
{
    atomic_store(&f->stop, 1);
    return th_thread_join(&f->t, timeout_ms);
}

/* ---- the watcher ------------------------------------------------------- */

static void *watch_fn(void *arg)
{
    hc_watch *w = arg;
    int64_t end = th_now_ms() + w->max_ms;
    struct pollfd *p = calloc((size_t)w->n, sizeof *p);
    int *map = calloc((size_t)w->n, sizeof *map);

    if (p == NULL || map == NULL)
        goto out;
    while (!atomic_load(&w->stop) && th_now_ms() < end &&
           atomic_load(&w->nclosed) < w->n) {
        int np = 0;
        for (int i = 0; i < w->n; i++) {
            if (w->closed_ms[i] >= 0 || w->fds[i] < 0)
                continue;
            p[np] = (struct pollfd){.fd = w->fds[i], .events = POLLIN};
            map[np++] = i;
        }
        int rc = poll(p, (nfds_t)np, 10);
        if (rc <= 0)
            continue;
        for (int k = 0; k < np; k++) {
            uint8_t buf[4096];
            ssize_t n;
            if (p[k].revents == 0)
                continue;
            do {
                n = recv(p[k].fd, buf, sizeof buf, MSG_DONTWAIT);
            } while (n > 0 || (n < 0 && errno == EINTR));
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                w->closed_ms[map[k]] = th_now_ms();
                atomic_fetch_add(&w->nclosed, 1);
            }
        }
    }
out:
    free(p);
    free(map);
    return NULL;
}

int hc_watch_start(hc_watch *w, const int *fds, int n, int64_t *closed_ms,
                   int max_ms)
{
    int already = 0;

    w->n = n;
    w->fds = fds;
    w->closed_ms = closed_ms;
    w->max_ms = max_ms;
    for (int i = 0; i < n; i++) {
        closed_ms[i] = -1;
        if (fds[i] < 0) {
            closed_ms[i] = 0;
            already++;
        }
    }
    atomic_init(&w->nclosed, already);
    atomic_init(&w->stop, 0);
    return th_thread_start(&w->t, watch_fn, w);
}

int hc_watch_count(hc_watch *w)
{
    return atomic_load(&w->nclosed);
}

int hc_watch_join(hc_watch *w, int timeout_ms)
{
    atomic_store(&w->stop, 1);
    return th_thread_join(&w->t, timeout_ms);
}

/* ---- TLS client on memory BIOs ------------------------------------------ */

#define SSLP(c) ((SSL *)(c)->ssl)

static void tls_err(hc_tls *c, const char *what)
{
    unsigned long e = ERR_get_error();
    char one[160] = "";

    if (e != 0)
        ERR_error_string_n(e, one, sizeof one);
    snprintf(c->err, sizeof c->err, "%s%s%s", what, e != 0 ? ": " : "", one);
    ERR_clear_error();
}

int hc_tls_new(hc_tls *c, int fd, int max_version)
{
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rb, *wb;
    int fl = fcntl(fd, F_GETFL);

    memset(c, 0, sizeof *c);
    c->fd = fd;
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        snprintf(c->err, sizeof c->err, "fcntl: %s", strerror(errno));
        goto fail;
    }
    ctx = SSL_CTX_new(TLS_client_method());
    c->ctx = ctx;
    if (ctx == NULL || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, max_version)) {
        tls_err(c, "SSL_CTX");
        goto fail;
    }
    ssl = SSL_new(ctx);
    c->ssl = ssl;
    rb = BIO_new(BIO_s_mem());
    wb = BIO_new(BIO_s_mem());
    if (ssl == NULL || rb == NULL || wb == NULL) {
        BIO_free(rb);
        BIO_free(wb);
        tls_err(c, "SSL_new / BIO_new");
        goto fail;
    }
    BIO_set_mem_eof_return(rb, -1); /* empty: "retry", not end of file */
    SSL_set_bio(ssl, rb, wb);
    c->rb = rb;
    c->wb = wb;
    (void)SSL_set_tlsext_host_name(ssl, "localhost");
    SSL_set_connect_state(ssl);
    return 0;
fail : {
    char keep[sizeof c->err];
    memcpy(keep, c->err, sizeof keep);
    hc_tls_free(c);
    memcpy(c->err, keep, sizeof keep);
    return -1;
}
}

int hc_tls_step(hc_tls *c)
{
    int r;

    ERR_clear_error();
    r = SSL_connect(SSLP(c));
    if (r == 1)
        return 0;
    int e = SSL_get_error(SSLP(c), r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 1;
    tls_err(c, "handshake");
    return -1;
}

size_t hc_tls_pending_out(const hc_tls *c)
{
    return c->wb != NULL ? BIO_ctrl_pending((BIO *)c->wb) : 0;
}

size_t hc_tls_take(hc_tls *c, uint8_t *buf, size_t cap)
{
    int n = BIO_read((BIO *)c->wb, buf, (int)cap);
    return n > 0 ? (size_t)n : 0;
}

int hc_tls_flush(hc_tls *c, int timeout_ms)
{
    uint8_t buf[16384];
    size_t n;

    while ((n = hc_tls_take(c, buf, sizeof buf)) > 0) {
        size_t off = 0;
        int64_t end = th_now_ms() + timeout_ms;
        while (off < n) {
            ssize_t w =
                send(c->fd, buf + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0) {
                off += (size_t)w;
                continue;
            }
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                return -errno;
            int64_t left = end - th_now_ms();
            if (left <= 0)
                return -ETIMEDOUT;
            struct pollfd p = {.fd = c->fd, .events = POLLOUT};
            (void)poll(&p, 1, (int)left);
        }
    }
    return 0;
}

int hc_tls_pump(hc_tls *c, int timeout_ms)
{
    uint8_t buf[16384];
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int rc;

    do {
        rc = poll(&p, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0)
        return 0;
    ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
        BIO_write((BIO *)c->rb, buf, (int)n);
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    c->eof = 1;
    return -1;
}

int hc_tls_handshake(hc_tls *c, int timeout_ms)
{
    int64_t end = th_now_ms() + timeout_ms;

    for (;;) {
        int rc = hc_tls_step(c);
        if (rc < 0)
            return -1;
        rc = hc_tls_flush(c, timeout_ms);
        if (rc != 0) {
            snprintf(c->err, sizeof c->err, "send: %s", strerror(-rc));
            return -1;
        }
        if (SSL_is_init_finished(SSLP(c)))
            return 0;
        int64_t left = end - th_now_ms();
        if (left <= 0) {
            snprintf(c->err, sizeof c->err, "handshake timed out");
            return -1;
        }
        if (hc_tls_pump(c, (int)left) < 0) {
            snprintf(c->err, sizeof c->err, "handshake: end of stream");
            return -1;
        }
    }
}

int hc_tls_write(hc_tls *c, const void *buf, size_t len)
{
    size_t n = 0;

    ERR_clear_error();
    if (SSL_write_ex(SSLP(c), buf, len, &n) != 1 || n != len) {
        tls_err(c, "write");
        return -1;
    }
    return 0;
}

int hc_tls_read_exact(hc_tls *c, void *buf, size_t len, int timeout_ms)
{
    int64_t end = th_now_ms() + timeout_ms;
    size_t done = 0;

    while (done < len) {
        size_t n = 0;
        ERR_clear_error();
        if (SSL_read_ex(SSLP(c), (char *)buf + done, len - done, &n) == 1) {
            done += n;
            continue;
        }
        int e = SSL_get_error(SSLP(c), 0);
        if (e != SSL_ERROR_WANT_READ) {
            tls_err(c, "read");
            return -1;
        }
        (void)hc_tls_flush(c, timeout_ms); /* e.g. a KeyUpdate answer */
        int64_t left = end - th_now_ms();
        if (left <= 0) {
            snprintf(c->err, sizeof c->err, "read timed out");
            return -1;
        }
        if (hc_tls_pump(c, (int)left) < 0) {
            snprintf(c->err, sizeof c->err, "read: end of stream");
            return -1;
        }
    }
    return 0;
}

void hc_tls_free(hc_tls *c)
{
    if (c->ssl != NULL)
        SSL_free(SSLP(c)); /* frees both BIOs */
    else if (c->rb != NULL || c->wb != NULL) {
        BIO_free((BIO *)c->rb);
        BIO_free((BIO *)c->wb);
    }
    c->ssl = NULL;
    c->rb = c->wb = NULL;
    if (c->ctx != NULL)
        SSL_CTX_free((SSL_CTX *)c->ctx);
    c->ctx = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    ERR_clear_error();
}

void hc_tls_free_rst(hc_tls *c)
{
    if (c->fd >= 0) {
        th_close_rst(c->fd);
        c->fd = -1;
    }
    hc_tls_free(c);
}
